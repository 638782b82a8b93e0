"""Sounds: metadata, the audio (WAV, Range requests) and the spectrogram."""

from __future__ import annotations

import uuid

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from api.auth import CurrentPrincipal
from api.deps import SessionDep, StoreDep
from api.presenters import sound_out
from api.problems import ProblemException
from api.ranges import serve_object
from shared.models import Sound
from shared.schemas import SoundOut

router = APIRouter(tags=["sounds"])
IMMUTABLE = {"Cache-Control": "public, max-age=31536000, immutable"}


def owned_sound(sound_id: uuid.UUID, session: SessionDep, principal: CurrentPrincipal) -> Sound:
    """The sound, when the caller may see it; another account's sound is as good as absent (404)."""
    sound = session.get(Sound, sound_id)
    if sound is None or not principal.owns(sound.account_id):
        raise ProblemException(404, f"no sound {sound_id}")
    return sound


OwnedSound = Annotated[Sound, Depends(owned_sound)]


@router.get("/v1/sounds/{sound_id}", response_model=SoundOut)
def get_sound(sound: OwnedSound, request: Request) -> SoundOut:
    return sound_out(request, sound)


@router.get("/v1/sounds/{sound_id}/audio", name="get_sound_audio", response_class=Response,
            responses={200: {"content": {"audio/wav": {}}}, 206: {"description": "partial content"}})
def get_sound_audio(sound: OwnedSound, request: Request, store: StoreDep) -> Response:
    return serve_object(request, store, sound.audio_key, "audio/wav",
                        {**IMMUTABLE, "ETag": f'"{sound.id}-wav"',
                         "Content-Disposition": f'inline; filename="soundbox-{sound.id}.wav"'})


@router.get("/v1/sounds/{sound_id}/spectrogram.png", name="get_sound_spectrogram", response_class=Response,
            responses={200: {"content": {"image/png": {}}}})
def get_sound_spectrogram(sound: OwnedSound, request: Request, store: StoreDep) -> Response:
    etag = f'"{sound.id}-spec"'
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"ETag": etag, **IMMUTABLE})
    return serve_object(request, store, sound.spectrogram_key, "image/png", {**IMMUTABLE, "ETag": etag})
