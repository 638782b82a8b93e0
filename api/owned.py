"""Rows the caller may see, looked up in one place: another account's job or sound is as good as
absent (404), admins see everything; unlisted and public sounds are readable by anyone with the id."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends
from sqlmodel import Session

from api.auth import CurrentPrincipal, OptionalPrincipal, Principal, signed_in
from api.deps import SessionDep, SettingsDep
from api.problems import ProblemException
from shared.domain import jobs, library
from shared.domain.models import Job, Sound


def owned_job(session: Session, job_id: uuid.UUID, principal: Principal) -> Job:
    job = session.get(Job, job_id)
    if job is None or not principal.owns(job.account_id):
        raise ProblemException(404, f"no job {job_id}")
    return job


async def owned_job_async(job_id: uuid.UUID, principal: Principal) -> tuple[Job, Sound | None]:
    """``owned_job`` on the async pool, with the job's sound (jobs.read_async)."""
    found = await jobs.read_async(job_id)
    if found is None or not principal.owns(found[0].account_id):
        raise ProblemException(404, f"no job {job_id}")
    return found


def owned_sound(sound_id: uuid.UUID, session: SessionDep, principal: OptionalPrincipal, settings: SettingsDep) -> Sound:
    """The sound, when the caller may read it: the owner and admins always; anyone with the id when it
    is unlisted or public (without a key unless SOUNDBOX_LIBRARY_REQUIRES_KEY). Another account's
    private sound is as good as absent (404); a deleted sound answers 410 Gone to its owner."""
    sound = session.get(Sound, sound_id)
    owner = sound is not None and principal is not None and principal.owns(sound.account_id)
    if sound is not None and (owner or library.visible(sound, None, False)):
        if principal is None and settings.library_requires_key:
            signed_in(principal)  # 401
        if sound.deleted_at is not None:
            if owner:
                raise ProblemException(
                    410,
                    f"sound {sound_id} was deleted at {sound.deleted_at.isoformat()}",
                    deleted_at=sound.deleted_at.isoformat(),
                )
        else:
            return sound
    signed_in(principal)  # without a key: 401, whether or not the sound exists
    raise ProblemException(404, f"no sound {sound_id}")


def writable_sound(session: Session, sound_id: uuid.UUID, principal: Principal) -> Sound:
    """The sound, when the caller may change it (owner or admin): 404 when they cannot see it,
    403 when they can see it (unlisted or public) but it is not theirs."""
    sound = session.get(Sound, sound_id)
    if sound is None or not (principal.owns(sound.account_id) or library.visible(sound, None, False)):
        raise ProblemException(404, f"no sound {sound_id}")
    if not principal.owns(sound.account_id):
        if sound.deleted_at is not None:
            raise ProblemException(404, f"no sound {sound_id}")
        raise ProblemException(403, f"sound {sound_id} belongs to another account; only its owner may change it")
    return sound


def _owned_job(job_id: uuid.UUID, session: SessionDep, principal: CurrentPrincipal) -> Job:
    return owned_job(session, job_id, principal)


OwnedJob = Annotated[Job, Depends(_owned_job)]
OwnedSound = Annotated[Sound, Depends(owned_sound)]
