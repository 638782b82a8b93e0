"""GET /v1/voices: the installed Piper voices, and a cached spoken sample of each."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from api.conditional import not_modified
from api.deps import SettingsDep, StoreDep
from api.speech import (
    SAMPLES,
    SampleCache,
    SpeechPoolDep,
    admit_or_refuse,
    default_voice_id,
    keep_sample,
    load_stored_sample,
    sample_object_key,
    sample_text,
    unknown_voice_problem,
    voice_cache,
)
from shared.domain.schemas import OPENAI_VOICES, SpeakerOut, VoiceList, VoiceOut
from shared.settings import Settings
from shared.speech.encode import wav_bytes
from shared.speech.synth import synthesize
from shared.speech.voices import UnknownVoice, VoiceInfo, discover_voices, find_voice

router = APIRouter(tags=["voices"])


def _voice_out(request: Request, info: VoiceInfo) -> VoiceOut:
    return VoiceOut(
        id=info.id,
        name=info.name,
        language=info.language,
        quality=info.quality,
        sample_rate=info.sample_rate,
        num_speakers=info.num_speakers,
        speakers=[SpeakerOut(id=i, name=n) for i, n in info.speakers],
        license=info.license,
        source=info.source,
        sample_url=str(request.url_for("get_voice_sample", voice_id=info.id)),
    )


def _find(settings: Settings, voice_id: str) -> VoiceInfo:
    try:
        return find_voice(settings, voice_id)
    except UnknownVoice as exc:
        raise unknown_voice_problem(exc) from None


@router.get("/v1/voices", response_model=VoiceList)
def list_voices(request: Request, settings: SettingsDep) -> VoiceList:
    """Voices from installed voice packages and `SOUNDBOX_VOICES_DIR`. OpenAI's voice names speak
    with `default`."""
    voices = [_voice_out(request, v) for v in discover_voices(settings).values()]
    return VoiceList(default=default_voice_id(settings), openai_aliases=list(OPENAI_VOICES), voices=voices)


@router.get("/v1/voices/{voice_id}", response_model=VoiceOut, responses={404: {"description": "Unknown voice"}})
def get_voice(voice_id: str, request: Request, settings: SettingsDep) -> VoiceOut:
    return _voice_out(request, _find(settings, voice_id))


def _render_sample(settings: Settings, info: VoiceInfo, text: str) -> bytes:
    voice = voice_cache(settings).get(info)
    return wav_bytes(synthesize(voice, text), voice.sample_rate)


@router.get(
    "/v1/voices/{voice_id}/sample",
    name="get_voice_sample",
    response_class=Response,
    responses={
        200: {"content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}}},
        304: {"description": "Not modified (If-None-Match)"},
        404: {"description": "Unknown voice"},
        503: {"description": "Speech synthesis at capacity; see Retry-After."},
    },
)
async def get_voice_sample(
    voice_id: str, request: Request, settings: SettingsDep, pool: SpeechPoolDep, store: StoreDep
) -> Response:
    """A short sentence in the voice's language, rendered once and cached (strong `ETag`;
    `If-None-Match` answers 304)."""
    info = await run_in_threadpool(_find, settings, voice_id)
    text = sample_text(info)
    key = SampleCache.key(info, text)
    cached = SAMPLES.get(key)
    if cached is None:  # this process has not served it yet: the object store, else render it
        object_key = await run_in_threadpool(sample_object_key, info, text)
        stored = await run_in_threadpool(load_stored_sample, store, object_key)
        if stored is not None:
            cached = SAMPLES.put(key, stored)
        else:
            admission = admit_or_refuse(pool)
            try:
                cached = SAMPLES.put(key, await pool.run(_render_sample, settings, info, text))
            finally:
                admission.release()
            await run_in_threadpool(keep_sample, store, object_key, cached[0])
    data, etag = cached
    headers = {"ETag": etag, "Cache-Control": "public, max-age=3600"}
    if not_modified(request, etag):
        return Response(status_code=304, headers=headers)
    return Response(data, media_type="audio/wav", headers=headers)
