"""Device pinning: a worker serves exactly one device (``cpu`` or ``cuda:N``) and refuses to
start when that device is not there."""

from __future__ import annotations

import re

_CUDA = re.compile(r"^cuda(?::(\d+))?$")


class DeviceUnavailable(RuntimeError):
    """The device a worker was asked to serve does not exist on this machine."""


def normalize(device: str) -> str:
    """``cpu`` or ``cuda:N`` (plain ``cuda`` means ``cuda:0``); ValueError for anything else."""
    device = device.strip().lower()
    if device == "cpu":
        return device
    m = _CUDA.match(device)
    if not m:
        raise ValueError(f"unknown device {device!r}: use cpu or cuda:N")
    return f"cuda:{m.group(1) or 0}"


def check_and_pin(device: str) -> str:
    """Check that ``device`` exists and make it this process's current CUDA device.

    Returns the normalized device name. Raises :class:`DeviceUnavailable` with a message that
    says what this machine has.
    """
    try:
        device = normalize(device)
    except ValueError as exc:
        raise DeviceUnavailable(str(exc)) from None
    if device == "cpu":
        return device
    import torch

    index = int(device.split(":")[1])
    if not torch.cuda.is_available():
        build = f"torch {torch.__version__}" + ("" if torch.version.cuda else ", a CPU-only build")
        raise DeviceUnavailable(
            f"device {device} asked for, but this machine has no usable CUDA GPU ({build}); "
            "start the worker with --device cpu or on a machine with a GPU"
        )
    count = torch.cuda.device_count()
    if index >= count:
        visible = ", ".join(f"cuda:{i} ({torch.cuda.get_device_name(i)})" for i in range(count))
        raise DeviceUnavailable(
            f"device {device} asked for, but this machine has {count} visible GPU(s): {visible} "
            "(CUDA_VISIBLE_DEVICES renumbers them from 0)"
        )
    torch.cuda.set_device(index)
    return device
