"""Lip-sync engines behind one interface: `render(ChunkJob)` yields the chunk's frames."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import numpy as np

from vestnik.avatar import Avatar
from vestnik.errors import VestnikError
from vestnik.lipsync.chunk import ChunkJob

ENGINES = ("procedural",)


class Engine(Protocol):
    device: str

    def render(self, chunk: ChunkJob) -> Iterator[np.ndarray]: ...


def _engine_class(name: str, job: str | None):
    if name == "procedural":
        from vestnik.lipsync.procedural import ProceduralEngine

        return ProceduralEngine
    raise VestnikError(f"unknown lip-sync engine '{name}' (known: {', '.join(ENGINES)})", job=job)


def make_engine(lipsync_settings: dict, *, job: str | None = None) -> Engine:
    """Build the engine named in `lipsync_settings["engine"]` with its own settings block."""
    name = lipsync_settings["engine"]
    return _engine_class(name, job)(lipsync_settings.get(name, {}), job=job)


def check_engine(lipsync_settings: dict, avatar: Avatar, job: str) -> None:
    """Fail early if the engine is unknown or cannot find what it needs in the avatar."""
    from vestnik.lipsync.face import find_mouth_box

    name = lipsync_settings["engine"]
    _engine_class(name, job)
    find_mouth_box(avatar, lipsync_settings.get(name, {}).get("mouth_box"), job=job)
