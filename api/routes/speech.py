"""POST /v1/audio/speech: OpenAI-compatible text to speech, streamed sentence by sentence."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from api.deps import SettingsDep
from api.problems import ProblemException, field_error
from api.speech import (
    AudioStreamingResponse,
    PreparedSpeech,
    SpeechPoolDep,
    admit_or_refuse,
    resolve_voice,
    stream_speech,
    unknown_voice_problem,
    voice_cache,
)
from shared.domain.schemas import SpeechCreate, VoiceRef
from shared.settings import Settings
from shared.speech.encode import MEDIA_TYPES, stream_encoder
from shared.speech.synth import NothingToSay, SpeechOptionError, SpeechOptions, Utterance
from shared.speech.voices import UnknownVoice, VoiceInfo

router = APIRouter(tags=["speech"])

_AUDIO = {media: {"schema": {"type": "string", "format": "binary"}} for media in MEDIA_TYPES.values()}


def _prepare(settings: Settings, info: VoiceInfo, body: SpeechCreate) -> PreparedSpeech:
    """Load the voice (cached), plan the sentences, open the encoder: runs in a synthesis thread."""
    voice = voice_cache(settings).get(info)
    options = SpeechOptions(
        length_scale=body.length_scale,
        noise_scale=body.noise_scale,
        noise_w=body.noise_w,
        speaker=body.speaker,
        sentence_silence=body.sentence_silence,
        speed=body.speed,
        seed=body.seed,
    )
    utterance = Utterance(voice, body.input, options)
    return PreparedSpeech(utterance, stream_encoder(body.response_format, voice.sample_rate))


@router.post(
    "/v1/audio/speech",
    response_class=Response,
    responses={
        200: {"content": _AUDIO, "description": "The audio, streamed sentence by sentence (chunked)."},
        404: {"description": "Unknown voice; the problem lists the available ones."},
        503: {"description": "Speech synthesis at capacity; see Retry-After."},
    },
)
async def create_speech(body: SpeechCreate, settings: SettingsDep, pool: SpeechPoolDep) -> Response:
    """Speak `input` with a Piper voice, compatible with OpenAI's speech endpoint (`model` piper,
    tts-1 or tts-1-hd). The body streams as each sentence is synthesized: the first bytes leave
    after the first sentence. `wav` has a header of unknown length (as OpenAI's); `pcm` is raw
    16-bit little-endian mono at 24 kHz. Same text, voice, options and `seed` give the same audio."""
    requested = body.voice.id if isinstance(body.voice, VoiceRef) else body.voice
    try:
        info = await run_in_threadpool(resolve_voice, settings, requested)
    except UnknownVoice as exc:
        raise unknown_voice_problem(exc) from None
    admission = admit_or_refuse(pool)
    try:
        prepared = await pool.run(_prepare, settings, info, body)
    except BaseException as exc:
        admission.release()
        if isinstance(exc, SpeechOptionError):
            raise field_error(exc.field, str(exc), getattr(body, exc.field, None)) from None
        if isinstance(exc, NothingToSay):
            raise field_error("input", "has nothing a voice can pronounce", body.input[:80]) from None
        if isinstance(exc, UnknownVoice):  # removed between the lookup and the load
            raise unknown_voice_problem(exc) from None
        if isinstance(exc, FileNotFoundError):
            raise ProblemException(404, f"voice {info.id!r} is no longer installed", title="Unknown voice") from None
        raise
    headers = {"X-Voice": info.id, "X-Sample-Rate": str(prepared.encoder.sample_rate)}
    return AudioStreamingResponse(
        stream_speech(pool, admission, prepared), media_type=prepared.encoder.media_type, headers=headers
    )
