"""Lip-sync engines behind one interface: `render(ChunkJob)` yields the chunk's frames."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import numpy as np

from vestnik.avatar import Avatar
from vestnik.errors import VestnikError
from vestnik.lipsync.chunk import ChunkJob

ENGINES = ("procedural", "wav2lip")


class Engine(Protocol):
    """What every engine offers; constructors take `(settings, *, job, gpu)`.

    `gpu` is the top-level `gpu:` config block, used by engines that run on a device slot.
    """

    device: str

    def check(self, avatar: Avatar) -> None: ...

    def render(self, chunk: ChunkJob) -> Iterator[np.ndarray]: ...


def _engine_class(name: str, job: str | None):
    if name == "procedural":
        from vestnik.lipsync.procedural import ProceduralEngine

        return ProceduralEngine
    if name == "wav2lip":
        from vestnik.lipsync.wav2lip import Wav2LipEngine

        return Wav2LipEngine
    raise VestnikError(f"unknown lip-sync engine '{name}' (known: {', '.join(ENGINES)})", job=job)


def make_engine(
    lipsync_settings: dict, *, job: str | None = None, gpu: dict | None = None
) -> Engine:
    """Build the engine named in `lipsync_settings["engine"]` with its own settings block."""
    name = lipsync_settings["engine"]
    return _engine_class(name, job)(lipsync_settings.get(name, {}), job=job, gpu=gpu)


def check_engine(lipsync_settings: dict, avatar: Avatar, job: str) -> None:
    """Fail early if the engine is unknown or cannot find what it needs in the avatar."""
    make_engine(lipsync_settings, job=job).check(avatar)
