"""Rows the caller may see, looked up in one place: another account's job or sound is as good as
absent (404), admins see everything."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends
from sqlmodel import Session

from api.auth import CurrentPrincipal, Principal
from api.deps import SessionDep
from api.problems import ProblemException
from shared.domain.models import Job, Sound


def owned_job(session: Session, job_id: uuid.UUID, principal: Principal) -> Job:
    job = session.get(Job, job_id)
    if job is None or not principal.owns(job.account_id):
        raise ProblemException(404, f"no job {job_id}")
    return job


def owned_sound(sound_id: uuid.UUID, session: SessionDep, principal: CurrentPrincipal) -> Sound:
    sound = session.get(Sound, sound_id)
    if sound is None or not principal.owns(sound.account_id):
        raise ProblemException(404, f"no sound {sound_id}")
    return sound


def _owned_job(job_id: uuid.UUID, session: SessionDep, principal: CurrentPrincipal) -> Job:
    return owned_job(session, job_id, principal)


OwnedJob = Annotated[Job, Depends(_owned_job)]
OwnedSound = Annotated[Sound, Depends(owned_sound)]
