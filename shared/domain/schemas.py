"""Request and response bodies of the HTTP API (pydantic)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, field_validator

from shared.domain.catalog import ModelId
from shared.domain.models import JobStatus
from shared.domain.text import check_identifier, clean_text
from shared.domain.tiers import DEFAULT_TIER, TIER_NAMES, check_tier

CleanText = Annotated[str, BeforeValidator(clean_text)]  # rules in shared/domain/text.py
Identifier = Annotated[str, BeforeValidator(check_identifier)]
PROMPT_MAX = 500
SPEECH_MAX = 5000
DEFAULT_DURATION = 8.0
WEBHOOK_URL_MAX = 2048


class EventType(StrEnum):
    """Job event types: the only spelling of these names (events, webhooks, SSE)."""

    queued = "job.queued"
    started = "job.started"
    progress = "job.progress"
    attempt = "job.attempt"
    succeeded = "job.succeeded"
    failed = "job.failed"
    canceled = "job.canceled"


TERMINAL_EVENTS = frozenset({EventType.succeeded, EventType.failed, EventType.canceled})
WEBHOOK_EVENT_TYPES = (EventType.started, EventType.progress, EventType.succeeded, EventType.failed, EventType.canceled)
DEFAULT_WEBHOOK_EVENTS = [EventType.succeeded, EventType.failed, EventType.canceled]


def _webhook_event(v: Any) -> Any:
    if isinstance(v, str) and v in EventType._value2member_map_ and v not in WEBHOOK_EVENT_TYPES:
        raise ValueError(f"webhooks are not sent for {v}; choose from {', '.join(WEBHOOK_EVENT_TYPES)}")
    return v


# An event type a webhook may ask for (job.queued and job.attempt are for the event stream only).
WebhookEventType = Annotated[
    EventType,
    BeforeValidator(_webhook_event),
    WithJsonSchema({"type": "string", "enum": [e.value for e in WEBHOOK_EVENT_TYPES]}),
]


class GenerationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: Literal[ModelId, "auto"] = Field(
        description="music (MusicGen), audio (AudioGen sound effects), magnet (MAGNeT), voice (Piper TTS), or auto "
        "(chosen from the prompt; the job's model_choice says which and why)"
    )
    prompt: CleanText = Field(
        min_length=3,
        max_length=SPEECH_MAX,
        description=f"What to generate, 3-{PROMPT_MAX} characters; for voice the text to speak, up to {SPEECH_MAX}.",
    )
    duration: float | None = Field(
        None,
        gt=0,
        strict=True,
        description=f"Seconds (default {DEFAULT_DURATION:g}, capped at the model's maximum); ignored for voice.",
    )
    loopable: bool = Field(
        False, strict=True, description="Crossfade the end into the start so the clip loops seamlessly."
    )
    priority: int = Field(5, ge=0, le=9, strict=True, description="0-9, higher runs first.")
    seed: int | None = Field(None, ge=0, le=2**31 - 1, strict=True, description="Random seed; random when omitted.")
    voice: Identifier | None = Field(
        None, min_length=1, max_length=128, description="Piper voice id from GET /v1/voices (voice model only)."
    )
    # Sampling controls (shared/domain/sampling.py has the per-model defaults and bounds; GET /v1/models shows them)
    top_k: int | None = Field(
        None, ge=0, strict=True, description="Sample among the k most likely tokens (0: no limit)."
    )
    top_p: float | None = Field(
        None, ge=0, le=1, strict=True, description="Nucleus sampling threshold (0: off; overrides top_k)."
    )
    temperature: float | None = Field(
        None, ge=0, strict=True, description="Softmax temperature (MAGNeT: the initial one)."
    )
    cfg_coef: float | None = Field(None, ge=0, strict=True, description="Classifier-free guidance strength.")
    decoding_steps: list[int] | None = Field(
        None, min_length=1, max_length=16, strict=True, description="MAGNeT only: decoding steps per codebook."
    )
    webhook_url: str | None = Field(
        None,
        max_length=WEBHOOK_URL_MAX,
        description="http(s) URL told about this job (signed, Standard Webhooks); it must resolve to public "
        "addresses unless SOUNDBOX_WEBHOOK_ALLOWLIST admits it.",
    )
    webhook_events: list[WebhookEventType] | None = Field(
        None,
        min_length=1,
        max_length=len(WEBHOOK_EVENT_TYPES),
        description="Which events to send (default: job.succeeded, job.failed, job.canceled); "
        "job.progress comes at most once a second.",
    )

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        from shared.domain.webhooks import check_url_syntax

        return check_url_syntax(v)  # a ValueError names what is wrong

    @field_validator("webhook_events")
    @classmethod
    def _unique_events(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else sorted(set(v), key=WEBHOOK_EVENT_TYPES.index)


class QualityOut(BaseModel):
    score: float = Field(description="0-100; every issue puts it under 50.")
    issues: list[dict[str, Any]] = Field(
        description="Each {code, severity, value, threshold, message, confidence, fails} (docs/quality.md)."
    )
    is_good: bool
    accepted_anyway: bool = Field(
        False, description="No generation attempt passed the quality check; this is the best-scoring one, kept anyway."
    )
    note: str | None = None


class AttemptOut(BaseModel):
    """One generation attempt of a job and its quality report."""

    model_config = ConfigDict(extra="allow")

    attempt: int
    seed: int | None = None
    seconds: float | None = None
    kind: str | None = None
    score: float
    is_good: bool
    issues: list[dict[str, Any]] = Field(default_factory=list)
    kept: bool = Field(False, description="This attempt became the job's result.")
    batch: int | None = Field(None, description="Jobs generated together in this attempt's generation call.")
    generated_seconds: float | None = Field(
        None, description="Audio length generated (the duration bucket, before trimming to the job's duration)."
    )


class ResultOut(BaseModel):
    sound_id: uuid.UUID
    audio_url: str
    spectrogram_url: str
    duration: float
    sample_rate: int
    quality: QualityOut
    deleted_at: datetime | None = Field(None, description="Set when the sound was deleted: its URLs answer 410 Gone.")


class JobOut(BaseModel):
    id: uuid.UUID
    status: JobStatus
    model: str
    params: dict[str, Any]
    priority: int
    progress: float
    attempts: int
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    result: ResultOut | None = None
    webhook_url: str | None = None
    webhook_events: list[str] = Field(default_factory=list)
    attempt_history: list[AttemptOut] = Field(
        default_factory=list, description="Every generation attempt, in order, with its quality report."
    )
    warnings: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Prompt warnings recorded at submit ({code, message, explanation, "
        "example}, as POST /v1/prompts/check); they never block.",
    )
    model_choice: dict[str, Any] | None = Field(
        None, description='How "model": "auto" was resolved: {chosen, reason, ...}; null when a model was named.'
    )


class JobList(BaseModel):
    items: list[JobOut]
    next_cursor: str | None = Field(None, description="Pass as ?cursor= to get the next page; null on the last page.")


class CategoryOut(BaseModel):
    name: str = Field(description="e.g. ambient, rain, footsteps, narration")
    group: str = Field(description="what kind of category: genre, mood, instrument, tempo, weather, impacts, ...")
    score: float = Field(description="0-1, how strongly the prompt (and the audio) point to it")
    source: str | None = Field(None, description="prompt, audio, or prompt+audio: what it was found in")
    value: float | None = Field(None, description="a measured or stated value, e.g. the tempo in BPM")


class SoundOut(BaseModel):
    id: uuid.UUID
    job_id: uuid.UUID
    model: str
    kind: Literal["music", "sfx", "speech"]
    prompt: str
    title: str | None = None
    tags: list[str] = Field(default_factory=list)
    visibility: Literal["private", "unlisted", "public"] = "private"
    categories: list[CategoryOut] = Field(default_factory=list, description="Best first, a few at most.")
    duration: float
    sample_rate: int
    channels: int
    loopable: bool
    quality: QualityOut
    audio_url: str
    spectrogram_url: str
    peaks_url: str | None = None
    created_at: datetime
    owned: bool | None = Field(None, description="Whether the caller owns it (null without a key).")


class ModelWorkerOut(BaseModel):
    """One worker's copy of a model."""

    worker: str
    device: str
    state: Literal["unloaded", "loading", "warming", "ready", "generating", "unloading"]
    footprint_bytes: int | None = Field(None, description="Memory it holds, measured after loading.")
    peak_bytes: int | None = Field(None, description="Most memory seen while it warmed up or generated.")
    estimate_bytes: int = Field(description="The catalog's estimate the worker plans with before measuring.")
    active: int = Field(0, description="Generations running with it now.")
    idle_seconds: float | None = None


class ModelOut(BaseModel):
    id: str
    kind: str
    family: str
    hub_id: str | None = Field(None, description="The checkpoint's hub id (none for the tiny catalog).")
    queue: str
    sample_rate: int
    min_duration: float
    max_duration: float
    durations: list[float] | None = Field(None, description="The only lengths this model makes (MAGNeT).")
    default_duration: float | None = None
    window_seconds: float | None = Field(None, description="Longer clips are made in overlapping windows.")
    memory_estimate_bytes: int
    controls: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Sampling controls it takes: type, default, minimum, maximum."
    )
    state: Literal["generating", "loaded", "warming", "loading", "unloading", "available", "missing"] = Field(
        description="The most ready state on any live worker (loaded = ready or generating), else whether "
        "its weights are present."
    )
    workers: list[ModelWorkerOut] = Field(default_factory=list, description="Each live worker holding it.")
    description: str


class ModelList(BaseModel):
    catalog: Literal["default", "tiny"]
    models: list[ModelOut]


# --- webhooks -----------------------------------------------------------------------------------


class WebhookSecretOut(BaseModel):
    secret: str = Field(description="`whsec_` + base64: verifies `webhook-signature` as Standard Webhooks says.")
    created_at: datetime
    rotated_at: datetime | None
    previous_secret_expires_at: datetime | None = Field(
        description="After a rotation the previous secret signs too (a second signature) until then."
    )


class WebhookAttemptOut(BaseModel):
    attempt: int
    attempted_at: datetime
    status_code: int | None = Field(description="The receiver's answer; null when none came (see error).")
    latency_ms: float | None
    error: str | None
    address: str | None = Field(description="The IP address the try connected to.")


class WebhookDeliveryOut(BaseModel):
    id: uuid.UUID
    webhook_id: str = Field(description="The `webhook-id` header: the same on every try.")
    event_type: str
    url: str
    state: str = Field(
        description="pending | succeeded | failed (retries spent) | disabled (answered 410) | "
        "skipped (URL disabled) | refused (URL resolved to a forbidden address)"
    )
    next_attempt_at: datetime | None
    created_at: datetime
    finished_at: datetime | None
    last_status_code: int | None
    last_error: str | None = Field(description="Why the last try failed, or why nothing was sent (skipped).")
    attempts: list[WebhookAttemptOut]


class WebhookDeliveryList(BaseModel):
    items: list[WebhookDeliveryOut]


class DisabledUrlOut(BaseModel):
    url: str
    disabled_at: datetime


# --- admin --------------------------------------------------------------------------------------


class QueueDepth(BaseModel):
    model: str
    priority: int
    queued: int


class ModelQueue(BaseModel):
    model: str
    queued: int
    running: int
    oldest_wait_seconds: float | None


class QueueReport(BaseModel):
    depth: list[QueueDepth]
    models: list[ModelQueue]
    workers: list[dict[str, Any]]


class KeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    tier: str = Field(
        DEFAULT_TIER,
        min_length=1,
        max_length=32,
        description=f"A tier of the configured table (SOUNDBOX_TIERS; by default {', '.join(TIER_NAMES)}).",
    )
    admin: bool = False

    @field_validator("tier")
    @classmethod
    def _configured_tier(cls, v: str) -> str:
        from shared.settings import get_settings

        return check_tier(get_settings().tiers, v)  # a ValueError names the configured tiers


class KeyOut(BaseModel):
    id: uuid.UUID
    prefix: str
    name: str
    account_id: uuid.UUID
    tier: str
    admin: bool
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class KeyCreated(KeyOut):
    key: str = Field(description="The secret. Shown once; only its hash is stored.")


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[dict[str, Any]] | None = None


# --- speech (OpenAI-compatible) and voices ---------------------------------------------------------

SPEECH_MODELS = ("piper", "tts-1", "tts-1-hd")  # tts-1 and tts-1-hd: OpenAI names, aliases of piper
# OpenAI's built-in voice names; each speaks with the default voice (see GET /v1/voices).
OPENAI_VOICES = (
    "alloy",
    "ash",
    "ballad",
    "coral",
    "echo",
    "fable",
    "nova",
    "onyx",
    "sage",
    "shimmer",
    "verse",
    "marin",
    "cedar",
)


class VoiceRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Identifier = Field(min_length=1, max_length=128)


class SpeechCreate(BaseModel):
    """OpenAI's `POST /v1/audio/speech` body, plus Piper's own options."""

    model_config = ConfigDict(extra="forbid", strict=True)

    model: Literal["piper", "tts-1", "tts-1-hd"] = Field(
        description="piper; tts-1 and tts-1-hd are accepted as aliases (all speak with Piper)."
    )
    input: CleanText = Field(
        min_length=1, max_length=SPEECH_MAX, description=f"The text to speak, up to {SPEECH_MAX} characters."
    )
    voice: Identifier | VoiceRef | None = Field(
        None,
        description='A Piper voice id from GET /v1/voices (or {"id": ...}); OpenAI\'s names '
        "(alloy, echo, fable, onyx, nova, shimmer, ...) and omission mean the default voice.",
    )
    response_format: Literal["wav", "mp3", "flac", "opus", "pcm"] = Field(
        "wav",
        description="wav (16-bit, voice rate), mp3, flac, opus (Ogg Opus), or pcm "
        "(raw 16-bit little-endian mono at 24 kHz, as OpenAI's).",
    )
    speed: float = Field(1.0, ge=0.25, le=4.0, description="0.25-4.0; divides the length scale.")
    instructions: str | None = Field(
        None, max_length=SPEECH_MAX, description="Accepted for OpenAI compatibility; Piper voices ignore it."
    )
    stream_format: Literal["audio"] | None = Field(
        None, description="Only 'audio' (server-sent events are not offered)."
    )
    length_scale: float | None = Field(
        None, ge=0.1, le=10, description="Piper: phoneme duration (> 1 slower); voice default when omitted."
    )
    noise_scale: float | None = Field(
        None, ge=0, le=2, description="Piper: generator noise; voice default when omitted."
    )
    noise_w: float | None = Field(
        None, ge=0, le=2, description="Piper: phoneme width noise; voice default when omitted."
    )
    speaker: int | str | None = Field(None, description="Piper: speaker id or name of a multi-speaker voice.")
    sentence_silence: float = Field(0.0, ge=0, le=5, description="Piper: seconds of silence after each sentence.")
    seed: int = Field(
        0, ge=0, le=2**31 - 1, description="Which noise to use: same text, voice, options and seed give the same audio."
    )

    @field_validator("speaker")
    @classmethod
    def _speaker(cls, v: int | str | None) -> int | str | None:
        if (isinstance(v, int) and v < 0) or (isinstance(v, str) and not 1 <= len(v) <= 128):
            raise ValueError("must be a speaker id (0 or more) or a name of 1-128 characters")
        return v


class SpeakerOut(BaseModel):
    id: int
    name: str


class VoiceOut(BaseModel):
    id: str
    name: str
    language: str | None
    quality: str | None
    sample_rate: int
    num_speakers: int
    speakers: list[SpeakerOut] = Field(description="Named speakers of a multi-speaker voice, by id.")
    license: str | None
    source: str = Field(description="'package <distribution>' or 'voices_dir'.")
    sample_url: str


class VoiceList(BaseModel):
    default: str = Field(description="The voice used when none is named, and for OpenAI's voice names.")
    openai_aliases: list[str]
    voices: list[VoiceOut]


# --- the library: listing, editing, categories, prompt guidance ----------------------------------------

TAG_MAX = 64
TAGS_MAX = 20
TITLE_MAX = 200


def _clean_tags(v: Any) -> Any:
    """Tags are trimmed, lower-cased, inner white space collapsed, duplicates dropped (first kept)."""
    if not isinstance(v, list):
        return v
    out: list[str] = []
    for tag in v:
        if not isinstance(tag, str):
            raise ValueError("each tag must be a string")
        tag = " ".join(clean_text(tag).split()).lower()
        if not 1 <= len(tag) <= TAG_MAX:
            raise ValueError(f"each tag must be 1-{TAG_MAX} characters")
        if tag not in out:
            out.append(tag)
    return out


class SoundPatch(BaseModel):
    """Any of title, tags, visibility; fields left out stay as they are (title null clears it)."""

    model_config = ConfigDict(extra="forbid")

    title: CleanText | None = Field(
        None, max_length=TITLE_MAX, description=f"Up to {TITLE_MAX} characters; null or empty clears it."
    )
    tags: Annotated[list[str], BeforeValidator(_clean_tags)] | None = Field(
        None,
        max_length=TAGS_MAX,
        description=f"Replaces the tags: up to {TAGS_MAX}, each 1-{TAG_MAX} characters (stored lower-case)",
    )
    visibility: Literal["private", "unlisted", "public"] | None = Field(
        None, description="private: only you; unlisted: anyone with the id; public: also listed in GET /v1/library"
    )


class SoundList(BaseModel):
    items: list[SoundOut]
    next_cursor: str | None = Field(
        None, description="Pass as ?cursor= (with the same filters) for the next page; null on the last page."
    )


class CategoryCount(BaseModel):
    name: str
    group: str
    count: int


class CategoryList(BaseModel):
    categories: list[CategoryCount]


class PromptCheck(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: CleanText = Field(min_length=1, max_length=SPEECH_MAX)
    model: Literal["music", "audio", "magnet", "voice", "auto"] = "auto"


class PromptWarning(BaseModel):
    code: str = Field(
        description="too_vague | too_complex | contradictory | non_audio | ambiguous_model | "
        "model_mismatch | describes_speech"
    )
    message: str
    explanation: str
    example: str | None = None


class PromptSuggestion(BaseModel):
    missing: str = Field(
        description="music: genre, mood, instruments, tempo; sfx: sound type, material, intensity, environment"
    )
    message: str
    example: str


class ModelChoice(BaseModel):
    chosen: Literal["music", "audio", "voice"]
    reason: str


class PromptCheckOut(BaseModel):
    warnings: list[PromptWarning]
    suggestions: list[PromptSuggestion]
    model: ModelChoice | None = Field(None, description='For "auto": the model a generation would use, and why.')
