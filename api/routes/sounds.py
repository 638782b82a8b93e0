"""Sounds: metadata, the audio (WAV as generated, or FLAC / MP3 / Ogg Vorbis / Ogg Opus
converted once and cached; Range requests on all), waveform peaks and the spectrogram."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from api.auth import OptionalPrincipal, SignedIn
from api.conditional import not_modified
from api.deps import SessionDep, StoreDep
from api.owned import OwnedSound, writable_sound
from api.presenters import sound_out
from api.problems import ProblemException
from api.ranges import serve_object
from api.sound_query import SoundQueryDep, list_page
from shared.audio import formats, peaks
from shared.domain import library
from shared.domain.models import Sound, utcnow
from shared.domain.schemas import SoundList, SoundOut, SoundPatch
from shared.infra.storage import ObjectNotFound

router = APIRouter(tags=["sounds"])
IMMUTABLE = {"Cache-Control": "public, max-age=31536000, immutable"}


@router.get(
    "/v1/sounds/{sound_id}",
    response_model=SoundOut,
    responses={410: {"description": "the sound was deleted (its owner asks)"}},
)
def get_sound(sound: OwnedSound, request: Request, principal: OptionalPrincipal) -> SoundOut:
    """The sound's metadata: prompt, title, tags, visibility, categories, quality report, URLs."""
    return sound_out(request, sound, principal.account.id if principal else None)


def _missing(sound: Sound) -> ProblemException:
    return ProblemException(404, f"the audio of sound {sound.id} is missing from the store")


AUDIO_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {f.media_type: {} for f in formats.FORMATS.values()},
        "description": "the audio; Range requests get 206",
    },
    206: {"description": "partial content"},
    304: {"description": "not modified (If-None-Match)"},
    406: {"description": "the Accept header names no supported format"},
}


@router.get("/v1/sounds/{sound_id}/audio", name="get_sound_audio", response_class=Response, responses=AUDIO_RESPONSES)
def get_sound_audio(
    sound: OwnedSound,
    request: Request,
    store: StoreDep,
    format: Annotated[
        str | None,
        Query(
            description=f"One of {', '.join(formats.SUPPORTED)}; wins over the Accept header "
            "(audio/wav, audio/flac, audio/mpeg, audio/ogg, audio/opus). Default: wav."
        ),
    ] = None,
) -> Response:
    """The sound's audio. WAV is the file as generated; other formats are converted on first
    request and cached. Every format supports Range and If-None-Match."""
    if format is not None:
        try:
            fmt = formats.check_format(format)
        except formats.UnsupportedFormat as exc:
            raise RequestValidationError(
                [{"type": "enum", "loc": ("query", "format"), "msg": str(exc), "input": format}]
            ) from None
    else:
        name = formats.negotiate(request.headers.get("accept"))
        if name is None:
            raise ProblemException(
                406,
                "none of the types in the Accept header can be served; "
                f"supported: {', '.join(f.media_type for f in formats.FORMATS.values())}",
                supported=list(formats.SUPPORTED),
            )
        fmt = formats.FORMATS[name]
    etag = f'"{sound.id}-{fmt.name}"'
    headers = {
        **IMMUTABLE,
        "ETag": etag,
        "Vary": "Accept",
        "Content-Disposition": formats.content_disposition(sound.prompt, str(sound.id), fmt.name),
    }
    if not_modified(request, etag):
        return Response(status_code=304, headers=headers)
    try:
        key = formats.ensure_format(store, sound.audio_key, fmt.name)
        return serve_object(request, store, key, fmt.media_type, headers)
    except ObjectNotFound:
        raise _missing(sound) from None


@router.get(
    "/v1/sounds/{sound_id}/peaks",
    name="get_sound_peaks",
    response_class=Response,
    responses={
        200: {
            "content": {
                "application/json": {
                    "example": {
                        "points": 2,
                        "sample_rate": 32000,
                        "duration": 2.0,
                        "channels": 1,
                        "peaks": [[-0.41, 0.43], [-0.38, 0.4]],
                    }
                }
            }
        },
        304: {"description": "not modified"},
    },
)
def get_sound_peaks(
    sound: OwnedSound,
    request: Request,
    store: StoreDep,
    points: Annotated[
        int, Query(ge=1, le=peaks.MAX_POINTS, description="How many [min, max] pairs (each covers duration / points).")
    ] = 1000,
) -> Response:
    """Waveform peaks for drawing the sound: ``points`` equal spans of the clip, each span's
    minimum and maximum sample over all channels. Computed once per ``points`` and cached."""
    etag = f'"{sound.id}-peaks-{points}"'
    headers = {**IMMUTABLE, "ETag": etag}
    if not_modified(request, etag):
        return Response(status_code=304, headers=headers)
    try:
        body = peaks.ensure_peaks(store, sound.audio_key, points)
    except ObjectNotFound:
        raise _missing(sound) from None
    return Response(body, media_type="application/json", headers=headers)


@router.get(
    "/v1/sounds/{sound_id}/spectrogram.png",
    name="get_sound_spectrogram",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, 304: {"description": "not modified"}},
)
def get_sound_spectrogram(sound: OwnedSound, request: Request, store: StoreDep) -> Response:
    """The mel spectrogram, rendered once by the worker."""
    etag = f'"{sound.id}-spec"'
    if not_modified(request, etag):
        return Response(status_code=304, headers={"ETag": etag, **IMMUTABLE})
    try:
        return serve_object(request, store, sound.spectrogram_key, "image/png", {**IMMUTABLE, "ETag": etag})
    except ObjectNotFound:
        raise ProblemException(404, f"the spectrogram of sound {sound.id} is missing from the store") from None


# --- the caller's library: list, edit, delete (shared/domain/library.py) --------------------------


@router.get("/v1/sounds", response_model=SoundList)
def list_sounds(request: Request, session: SessionDep, principal: SignedIn, query: SoundQueryDep) -> SoundList:
    """The caller's sounds (every account's for admins), newest first. `q` searches title and prompt
    (every word, each as a prefix); filters combine; follow `next_cursor` with the same parameters."""
    return list_page(
        request, session, query, library.Scope.mine(principal.account.id, principal.is_admin), principal.account.id
    )


@router.patch(
    "/v1/sounds/{sound_id}",
    response_model=SoundOut,
    responses={
        403: {"description": "another account's unlisted or public sound"},
        410: {"description": "the sound was deleted"},
    },
)
def update_sound(
    sound_id: uuid.UUID, body: SoundPatch, request: Request, session: SessionDep, principal: SignedIn
) -> SoundOut:
    """Set the title, replace the tags, or change who may see the sound; fields left out stay."""
    sound = writable_sound(session, sound_id, principal)
    if sound.deleted_at is not None:
        raise ProblemException(410, f"sound {sound_id} was deleted at {sound.deleted_at.isoformat()}")
    changes = body.model_dump(exclude_unset=True)
    if "title" in changes:
        sound.title = changes["title"] or None
    if "tags" in changes:
        sound.tags = changes["tags"] or []
    if changes.get("visibility") is not None:
        sound.visibility = changes["visibility"]
    session.add(sound)
    session.commit()
    session.refresh(sound)
    return sound_out(request, sound, principal.account.id)


@router.delete(
    "/v1/sounds/{sound_id}",
    status_code=204,
    response_class=Response,
    responses={204: {"description": "deleted (again: deleting a deleted sound is fine)"}},
)
def delete_sound(sound_id: uuid.UUID, session: SessionDep, store: StoreDep, principal: SignedIn) -> Response:
    """Delete the sound: its audio, converted formats, peaks and spectrogram leave the store; the
    row stays as a tombstone (the job's `result.deleted_at`; the sound's routes answer 410 Gone)."""
    sound = writable_sound(session, sound_id, principal)
    if sound.deleted_at is None:
        sound.deleted_at = utcnow()
        session.add(sound)
        session.commit()
    library.delete_objects(store, sound)
    return Response(status_code=204)
