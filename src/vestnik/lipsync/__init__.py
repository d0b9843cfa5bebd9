"""Lip-sync engines behind one interface: `render(ChunkJob)` yields the chunk's frames."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import numpy as np

from vestnik import engines
from vestnik.avatar import Avatar
from vestnik.lipsync.chunk import ChunkJob


class Engine(Protocol):
    """What every engine offers; constructors take `(settings, *, job, gpu)` (vestnik.engines).

    `gpu` is the top-level `gpu:` config block, used by engines that run on a device slot.
    """

    device: str
    setup_seconds: float
    """Time the last render spent preparing (weights, face boxes, windows) before frame one."""

    def check(self, avatar: Avatar) -> None: ...

    def render(self, chunk: ChunkJob) -> Iterator[np.ndarray]: ...


def make_engine(
    lipsync_settings: dict, *, job: str | None = None, gpu: dict | None = None
) -> Engine:
    """Build the engine named in `lipsync_settings["engine"]` with its own settings block."""
    spec, block = engines.chosen({"lipsync": lipsync_settings}, "lipsync", job)
    return spec.load()(block, job=job, gpu=gpu)


def check_engine(lipsync_settings: dict, avatar: Avatar, job: str) -> None:
    """Fail early if the engine is unknown or cannot find what it needs in the avatar."""
    make_engine(lipsync_settings, job=job).check(avatar)
