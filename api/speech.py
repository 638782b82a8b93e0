"""Speech in the API process: the bounded synthesis pool, voice resolution and the streamed body.

Piper runs on the CPU in ``speech_workers`` threads (ONNX Runtime releases the GIL while it
computes), never on the event loop. At most ``speech_workers + speech_max_pending`` speech
requests are admitted at once; the next one is refused with 503 and ``Retry-After`` before
anything is synthesized, so a flood of speech cannot starve the rest of the API.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import re
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any

import structlog
from cachetools import LRUCache
from fastapi import Depends
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from api.problems import ProblemException
from shared.domain.catalog import get_catalog
from shared.domain.schemas import OPENAI_VOICES
from shared.infra.storage import ObjectNotFound, ObjectStore, StoreUnavailable
from shared.settings import Settings, get_settings
from shared.speech.encode import StreamEncoder
from shared.speech.synth import Utterance
from shared.speech.voices import UnknownVoice, VoiceCache, VoiceInfo, discover_voices, shared_voice_cache

log = structlog.get_logger()
RETRY_AFTER_SECONDS = 1


class Admission:
    """One admitted speech request; :meth:`release` (idempotent) frees its place."""

    def __init__(self, pool: SpeechPool):
        self._pool, self._released = pool, False

    def release(self) -> None:
        with self._pool._lock:
            if not self._released:
                self._released = True
                self._pool._active -= 1


class SpeechPool:
    """A fixed set of synthesis threads and a bound on the requests using them."""

    def __init__(self, workers: int, max_pending: int):
        self.workers = workers
        self.capacity = workers + max_pending
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="speech")
        self._lock = threading.Lock()
        self._active = 0

    @property
    def active(self) -> int:
        with self._lock:
            return self._active

    def admit(self) -> Admission | None:
        """A place for one request, or None when the pool is at capacity."""
        with self._lock:
            if self._active >= self.capacity:
                return None
            self._active += 1
        return Admission(self)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        """Run ``fn(*args)`` in a synthesis thread, with the caller's context (log fields)."""
        return self._executor.submit(contextvars.copy_context().run, fn, *args)

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.wrap_future(self.submit(fn, *args))


@lru_cache(maxsize=4)
def _pool(workers: int, max_pending: int) -> SpeechPool:
    return SpeechPool(workers, max_pending)


def get_speech_pool(settings: Annotated[Settings, Depends(get_settings)]) -> SpeechPool:
    return _pool(settings.speech_workers, settings.speech_max_pending)


SpeechPoolDep = Annotated[SpeechPool, Depends(get_speech_pool)]


def voice_cache(settings: Settings) -> VoiceCache:
    """The API process's loaded voices (one cache per process)."""
    return shared_voice_cache(settings.speech_voice_cache_size, settings.speech_threads)


def admit_or_refuse(pool: SpeechPool) -> Admission:
    admission = pool.admit()
    if admission is None:
        raise ProblemException(
            503,
            f"speech synthesis is at capacity ({pool.capacity} requests at once); retry in {RETRY_AFTER_SECONDS} s",
            title="Speech capacity reached",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    return admission


# --- voices --------------------------------------------------------------------------------------


def default_voice_id(settings: Settings) -> str:
    return get_catalog(settings)["voice"].checkpoint


def resolve_voice(settings: Settings, requested: str | None) -> VoiceInfo:
    """A voice id, one of OpenAI's names (-> the default voice) or None (-> the default voice)."""
    voices = discover_voices(settings)
    if requested in voices:
        return voices[requested]
    if requested is None or requested.lower() in OPENAI_VOICES:
        requested = default_voice_id(settings)
        if requested in voices:
            return voices[requested]
    raise UnknownVoice(requested, list(voices))


def unknown_voice_problem(exc: UnknownVoice) -> ProblemException:
    return ProblemException(404, str(exc), title="Unknown voice", voice=exc.voice_id, available=exc.available)


# --- the streamed body ---------------------------------------------------------------------------


@dataclass
class PreparedSpeech:
    """Everything ready to stream: the text planned as sentences, and the encoder."""

    utterance: Utterance
    encoder: StreamEncoder

    def chunk(self, index: int) -> bytes:
        """Sentence ``index`` synthesized and encoded (runs in a synthesis thread)."""
        return self.encoder.encode(self.utterance.render(index))


async def stream_speech(pool: SpeechPool, admission: Admission, prepared: PreparedSpeech) -> AsyncIterator[bytes]:
    """Yield the encoded audio sentence by sentence. The admission is released when the stream
    ends, fails or is abandoned, but never before the synthesis thread working for it is done."""
    future: Future | None = None
    try:
        for index in range(len(prepared.utterance)):
            future = pool.submit(prepared.chunk, index)
            data = await asyncio.wrap_future(future)
            if data:
                yield data
        future = pool.submit(prepared.encoder.finish)
        data = await asyncio.wrap_future(future)
        if data:
            yield data
    finally:
        if future is not None and not future.done():
            future.add_done_callback(lambda _: admission.release())
        else:
            admission.release()


class AudioStreamingResponse(StreamingResponse):
    """A StreamingResponse that always closes its body generator (a client that goes away
    mid-stream must free its place in the speech pool at once, not when garbage is collected)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                await aclose()


# --- voice samples -------------------------------------------------------------------------------

SAMPLE_TEXTS = {
    "en": "Hello! My name is {name}, and this is how I sound. Thank you for listening.",
    "de": "Hallo! Ich heiße {name}, und so klinge ich. Danke fürs Zuhören.",
    "fr": "Bonjour ! Je m'appelle {name}, et voici ma voix. Merci de votre écoute.",
    "es": "¡Hola! Me llamo {name}, y así suena mi voz. Gracias por escuchar.",
    "it": "Ciao! Mi chiamo {name}, ed ecco la mia voce. Grazie per l'ascolto.",
    "nl": "Hallo! Mijn naam is {name}, en zo klink ik. Bedankt voor het luisteren.",
    "pt": "Olá! O meu nome é {name}, e esta é a minha voz. Obrigado por ouvir.",
}


def sample_text(info: VoiceInfo) -> str:
    """The sample sentence in the voice's language (English when there is none for it)."""
    family = (info.language or "en").split("_")[0].split("-")[0].lower()
    name = info.name.replace("_", " ").title()
    return SAMPLE_TEXTS.get(family, SAMPLE_TEXTS["en"]).format(name=name)


class SampleCache:
    """Rendered sample WAVs and their ETags by (voice, its files, text): bounded LRU, thread-safe."""

    def __init__(self, capacity: int = 32):
        self.capacity = capacity
        self._items: LRUCache[tuple, tuple[bytes, str]] = LRUCache(maxsize=capacity)
        self._lock = threading.Lock()

    @staticmethod
    def key(info: VoiceInfo, text: str) -> tuple:
        return (info.id, str(info.model_path), info.fingerprint, text)

    def get(self, key: tuple) -> tuple[bytes, str] | None:
        with self._lock:
            return self._items.get(key)

    def put(self, key: tuple, data: bytes) -> tuple[bytes, str]:
        entry = (data, f'"{hashlib.sha256(data).hexdigest()[:32]}"')
        with self._lock:
            self._items[key] = entry
        return entry


SAMPLES = SampleCache()


# Samples are kept in the object store too, so that every API process and host renders each one
# once in all (not once per process and restart) and all of them answer with the same bytes and
# ETag. The key names what makes the sample -- the voice id, its model's size, its config, the
# text and Piper's version -- never a local path. The store is a cache here: when it is down the
# sample is rendered and served anyway.


def sample_object_key(info: VoiceInfo, text: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        piper = version("piper-tts")
    except PackageNotFoundError:
        piper = "unknown"
    digest = hashlib.sha256()
    for part in (
        info.id.encode(),
        str(info.fingerprint[0]).encode(),
        info.config_path.read_bytes(),
        text.encode(),
        piper.encode(),
    ):
        digest.update(len(part).to_bytes(8, "big") + part)
    safe_id = re.sub(r"[^A-Za-z0-9._-]+", "_", info.id).lstrip("._-") or "voice"
    return f"voices/{safe_id}/sample-{digest.hexdigest()[:32]}.wav"


def load_stored_sample(store: ObjectStore, key: str) -> bytes | None:
    try:
        return store.get(key)
    except ObjectNotFound:
        return None
    except StoreUnavailable as exc:
        log.warning("voice sample not read from the store; rendering it", key=key, error=str(exc))
        return None


def keep_sample(store: ObjectStore, key: str, data: bytes) -> None:
    try:
        store.put(key, data, "audio/wav")
    except StoreUnavailable as exc:
        log.warning("voice sample not kept in the store", key=key, error=str(exc))
