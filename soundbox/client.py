"""A small typed client for the Sound Box HTTP API (httpx; no torch, no server code).

    from soundbox.client import Client

    with Client("http://127.0.0.1:8000", key="sk_...") as sb:
        job = sb.generate("calm piano, slow", model="music", duration=8, on_event=print)
        sb.download(job["result"]["sound_id"], "piano.wav")

Every failure is a :class:`SoundboxError` whose message is meant for people: it names the field
of a 422, the wait of a 429 or 503 (``retry_after``), and says when the server cannot be reached.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal, TypedDict

import httpx

DEFAULT_URL = "http://127.0.0.1:8000"
TERMINAL = frozenset({"succeeded", "failed", "canceled"})
TERMINAL_EVENTS = frozenset({"job.succeeded", "job.failed", "job.canceled"})
Format = Literal["wav", "flac", "mp3", "ogg", "opus"]
SpeechFormat = Literal["wav", "mp3", "flac", "opus", "pcm"]


class Quality(TypedDict, total=False):
    score: float
    issues: list[dict[str, Any]]
    is_good: bool
    accepted_anyway: bool
    note: str | None


class Result(TypedDict):
    sound_id: str
    audio_url: str
    spectrogram_url: str
    duration: float
    sample_rate: int
    quality: Quality


class Job(TypedDict, total=False):
    id: str
    status: Literal["queued", "running", "succeeded", "failed", "canceled"]
    model: str
    params: dict[str, Any]
    priority: int
    progress: float
    attempts: int
    error: str | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    result: Result | None
    attempt_history: list[dict[str, Any]]


class Sound(TypedDict, total=False):
    id: str
    job_id: str
    model: str
    prompt: str
    title: str | None
    tags: list[str]
    visibility: Literal["private", "unlisted", "public"]
    categories: list[dict[str, Any]]
    duration: float
    sample_rate: int
    channels: int
    loopable: bool
    quality: Quality
    audio_url: str
    spectrogram_url: str
    created_at: str


class Page(TypedDict):
    items: list[Any]
    next_cursor: str | None


@dataclass
class Event:
    """One Server-Sent Event of a job: ``type`` (job.progress, ...), ``job`` (the job as
    ``GET /v1/jobs/{id}`` shows it), ``id`` (for Last-Event-ID) and the whole ``envelope``."""

    type: str
    id: str | None
    envelope: dict[str, Any]

    @property
    def job(self) -> Job:
        return self.envelope.get("data") or {}  # type: ignore[return-value]

    @property
    def terminal(self) -> bool:
        return self.type in TERMINAL_EVENTS


class SoundboxError(Exception):
    """An API call that did not work, with a message for people."""

    def __init__(
        self,
        message: str,
        status: int | None = None,
        retry_after: float | None = None,
        problem: dict[str, Any] | None = None,
    ):
        super().__init__(message)
        self.message, self.status, self.retry_after, self.problem = message, status, retry_after, problem or {}


def _retry_after(resp: httpx.Response) -> float | None:
    try:
        return float(resp.headers["retry-after"])
    except (KeyError, ValueError):
        return None


def error_from(resp: httpx.Response) -> SoundboxError:
    """A readable SoundboxError for an error response (RFC 9457 problem+json or anything else)."""
    try:
        problem = resp.json()
        if not isinstance(problem, dict):
            problem = {}
    except ValueError:
        problem = {}
    detail = str(problem.get("detail") or resp.reason_phrase or "error")
    status, wait = resp.status_code, _retry_after(resp)
    if status == 401:
        msg = f"not authorized: {detail} (pass --key or set SOUNDBOX_API_KEY)"
    elif status == 403:
        msg = f"forbidden: {detail}"
    elif status == 404:
        msg = f"not found: {detail}"
    elif status == 410:
        msg = f"gone: {detail}"
    elif status == 422:
        fields = [f"{e.get('field')}: {e.get('message')}" for e in problem.get("errors") or []]
        msg = "invalid request: " + ("; ".join(fields) if fields else detail)
    elif status == 429:
        msg = f"too many requests: {detail}" + (f"; retry after {wait:g} s" if wait is not None else "")
    elif status == 503:
        msg = f"service unavailable: {detail}" + (f"; retry after {wait:g} s" if wait is not None else "")
    else:
        msg = f"HTTP {status}: {detail}"
    return SoundboxError(msg, status, wait, problem)


class Client:
    """The public API. ``url`` and ``key`` default to SOUNDBOX_URL and SOUNDBOX_API_KEY."""

    def __init__(
        self,
        url: str | None = None,
        key: str | None = None,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ):
        self.url = (url or os.environ.get("SOUNDBOX_URL") or DEFAULT_URL).rstrip("/")
        key = key if key is not None else os.environ.get("SOUNDBOX_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- plumbing ---------------------------------------------------------------------------------

    def _down(self, exc: httpx.TransportError) -> SoundboxError:
        if isinstance(exc, httpx.TimeoutException):
            return SoundboxError(f"Sound Box at {self.url} did not answer in time ({type(exc).__name__})")
        return SoundboxError(
            f"cannot reach Sound Box at {self.url}: is it running? (`soundbox up`, "
            f"or pass --url / set SOUNDBOX_URL) [{exc}]"
        )

    def request(
        self, method: str, path: str, *, ok: tuple[int, ...] = (200, 201, 202, 204), **kwargs: Any
    ) -> httpx.Response:
        try:
            resp = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self._down(exc) from None
        if resp.status_code not in ok:
            raise error_from(resp)
        return resp

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    @staticmethod
    def _params(**params: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, value in params.items():
            if value is None:
                continue
            out[name] = str(value).lower() if isinstance(value, bool) else value
        return out

    # --- generations and jobs ---------------------------------------------------------------------

    def submit(
        self,
        prompt: str,
        *,
        model: str = "music",
        duration: float | None = None,
        loopable: bool = False,
        seed: int | None = None,
        priority: int = 5,
        voice: str | None = None,
        wait: int | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        """Queue a generation; with ``wait`` (≤ 60 s) the answer holds until the job finishes or
        the wait is over (``Prefer: wait``)."""
        body = {
            k: v
            for k, v in {
                "model": model,
                "prompt": prompt,
                "duration": duration,
                "loopable": loopable,
                "seed": seed,
                "priority": priority,
                "voice": voice,
            }.items()
            if v is not None
        }
        headers = {}
        if wait is not None:
            headers["Prefer"] = f"wait={int(wait)}"
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        timeout = None if wait is None else wait + 30
        return self._json(
            "POST", "/v1/generations", json=body, headers=headers, timeout=timeout if timeout else self._http.timeout
        )

    def generate(self, prompt: str, *, on_event: Callable[[Event], None] | None = None, **options: Any) -> Job:
        """Submit and follow the job's events until it ends; the finished job (check its status)."""
        job = self.submit(prompt, **options)
        if job.get("status") in TERMINAL:
            return job
        return self.wait(job["id"], on_event=on_event)

    def job(self, job_id: str) -> Job:
        return self._json("GET", f"/v1/jobs/{job_id}")

    def jobs(
        self,
        *,
        status: str | None = None,
        model: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page:
        return self._json(
            "GET", "/v1/jobs", params=self._params(status=status, model=model, limit=limit, cursor=cursor)
        )

    def cancel(self, job_id: str) -> Job:
        return self._json("POST", f"/v1/jobs/{job_id}/cancel")

    def events(self, job_id: str, last_event_id: str | None = None, reconnects: int = 5) -> Iterator[Event]:
        """The job's Server-Sent Events until the terminal one; a dropped stream is resumed
        with Last-Event-ID (up to ``reconnects`` times in a row)."""
        failures = 0
        while True:
            headers = {"Accept": "text/event-stream"}
            if last_event_id:
                headers["Last-Event-ID"] = last_event_id
            try:
                with self._http.stream(
                    "GET", f"/v1/jobs/{job_id}/events", headers=headers, timeout=httpx.Timeout(10.0, read=60.0)
                ) as resp:
                    if resp.status_code == 204:
                        return
                    if resp.status_code != 200:
                        resp.read()
                        raise error_from(resp)
                    for event in parse_sse(resp.iter_lines()):
                        failures = 0
                        if event.id:
                            last_event_id = event.id
                        yield event
                        if event.terminal:
                            return
            except httpx.TransportError as exc:
                failures += 1
                if failures > reconnects:
                    raise self._down(exc) from None
                time.sleep(min(2.0, 0.2 * 2**failures))
                continue
            # the stream ended without a terminal event: look at the job itself
            if self.job(job_id).get("status") in TERMINAL:
                return
            failures += 1
            if failures > reconnects:
                return

    def wait(self, job_id: str, on_event: Callable[[Event], None] | None = None) -> Job:
        """Follow the job's events until it ends; the job as it ended."""
        for event in self.events(job_id):
            if on_event:
                on_event(event)
            if event.terminal and event.job.get("id"):
                return event.job
        return self.job(job_id)

    # --- sounds and the library -------------------------------------------------------------------

    def sound(self, sound_id: str) -> Sound:
        return self._json("GET", f"/v1/sounds/{sound_id}")

    def sounds(self, q: str | None = None, **filters: Any) -> Page:
        """Your sounds: ``q`` and the filters model, kind, category, tag, min_duration,
        max_duration, loopable, quality, sort (recent|duration|relevance), limit, cursor."""
        return self._json("GET", "/v1/sounds", params=self._params(q=q, **filters))

    def library(self, q: str | None = None, **filters: Any) -> Page:
        """Public sounds of every account, with the same filters as :meth:`sounds`."""
        return self._json("GET", "/v1/library", params=self._params(q=q, **filters))

    def update_sound(
        self, sound_id: str, *, title: str | None = None, tags: list[str] | None = None, visibility: str | None = None
    ) -> Sound:
        body = {k: v for k, v in {"title": title, "tags": tags, "visibility": visibility}.items() if v is not None}
        return self._json("PATCH", f"/v1/sounds/{sound_id}", json=body)

    def delete_sound(self, sound_id: str) -> None:
        self.request("DELETE", f"/v1/sounds/{sound_id}")

    def categories(self) -> list[dict[str, Any]]:
        return self._json("GET", "/v1/categories")["categories"]

    def check_prompt(self, prompt: str, model: str = "auto") -> dict[str, Any]:
        return self._json("POST", "/v1/prompts/check", json={"prompt": prompt, "model": model})

    def peaks(self, sound_id: str, points: int = 1000) -> dict[str, Any]:
        return self._json("GET", f"/v1/sounds/{sound_id}/peaks", params={"points": points})

    def download(self, sound_id: str, path: str | Path | BinaryIO, format: Format = "wav") -> int:
        """Write the sound's audio to ``path`` (or an open binary file); the bytes written."""
        return self._save("GET", f"/v1/sounds/{sound_id}/audio", path, params={"format": format})

    def spectrogram(self, sound_id: str, path: str | Path | BinaryIO) -> int:
        return self._save("GET", f"/v1/sounds/{sound_id}/spectrogram.png", path)

    # --- speech and voices ------------------------------------------------------------------------

    def speech(
        self,
        text: str,
        path: str | Path | BinaryIO,
        *,
        voice: str | None = None,
        response_format: SpeechFormat = "mp3",
        speed: float = 1.0,
        **piper: Any,
    ) -> int:
        """Speak ``text`` into ``path`` as it streams in (sentence by sentence); the bytes written."""
        body = {"model": "piper", "input": text, "response_format": response_format, "speed": speed, **piper}
        if voice:
            body["voice"] = voice
        return self._save("POST", "/v1/audio/speech", path, json=body)

    def voices(self) -> dict[str, Any]:
        return self._json("GET", "/v1/voices")

    def voice_sample(self, voice_id: str, path: str | Path | BinaryIO) -> int:
        return self._save("GET", f"/v1/voices/{voice_id}/sample", path)

    def models(self) -> dict[str, Any]:
        return self._json("GET", "/v1/models")

    def _save(self, method: str, path: str, target: str | Path | BinaryIO, **kwargs: Any) -> int:
        try:
            with self._http.stream(method, path, **kwargs) as resp:
                if resp.status_code != 200:
                    resp.read()
                    raise error_from(resp)
                if isinstance(target, str | Path):
                    with open(target, "wb") as out:
                        return _copy(resp, out)
                return _copy(resp, target)
        except httpx.TransportError as exc:
            raise self._down(exc) from None


def _copy(resp: httpx.Response, out: BinaryIO) -> int:
    written = 0
    for chunk in resp.iter_bytes():
        out.write(chunk)
        written += len(chunk)
    return written


def parse_sse(lines: Iterator[str]) -> Iterator[Event]:
    """Server-Sent Events from a stream's lines (comments and pings skipped)."""
    kind: str = "message"
    ident: str | None = None
    data: list[str] = []
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data:
                try:
                    envelope = json.loads("\n".join(data))
                except ValueError:
                    envelope = {"data": None, "raw": "\n".join(data)}
                yield Event(kind, ident, envelope if isinstance(envelope, dict) else {"data": envelope})
            kind, ident, data = "message", None, []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            kind = value
        elif name == "data":
            data.append(value)
        elif name == "id":
            ident = value or None
