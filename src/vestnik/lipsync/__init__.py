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


def landmark_model(lipsync_settings: dict) -> str:
    """The job's landmark model (`lipsync.landmarks`), its schema default when unset."""
    from vestnik.config import block_schema

    chosen = lipsync_settings.get("landmarks")
    return chosen or block_schema("lipsync")["properties"]["landmarks"]["default"]


def mouth_box(lipsync_settings: dict) -> object | None:
    """The procedural engine's configured mouth box, which replaces face detection."""
    if lipsync_settings["engine"] != "procedural":
        return None
    return (lipsync_settings.get("procedural") or {}).get("mouth_box")


def faces_file(lipsync_settings: dict, avatar_path: str) -> str | None:
    """The workflow's faces file for a job, or None when its mouth box is configured."""
    from vestnik.lipsync.face import faces_path

    if mouth_box(lipsync_settings) is not None:
        return None
    return faces_path(avatar_path, landmark_model(lipsync_settings))


def job_faces(
    lipsync_settings: dict, avatar: Avatar, job: str | None, faces_json: str | None = None
) -> list:
    """The faces a job's engine animates: from the faces file when given, else found here."""
    from vestnik.lipsync.face import avatar_faces

    return avatar_faces(
        avatar,
        landmark_model(lipsync_settings),
        mouth_box=mouth_box(lipsync_settings),
        faces_file=faces_json,
        job=job,
    )


def check_engine(
    lipsync_settings: dict, avatar: Avatar, job: str, faces_json: str | None = None
) -> None:
    """Fail early if the engine is unknown or cannot find what it needs in the avatar: an
    unknown engine, bad settings, or a face that is missing, too small, turned aside or cut
    by the frame (checked on the first frame; several faces warn and animate the largest).

    `faces_json` is the avatar's faces file (`faces_file`): when it was written after the
    avatar's last change, its step already checked the face (and warned), so the fit, about a
    second of CPU for dlib68, is not repeated for every job showing that avatar.
    """
    from vestnik.lipsync.face import check_first_face, read_faces

    make_engine(lipsync_settings, job=job).check(avatar)
    if mouth_box(lipsync_settings) is not None:
        return
    model = landmark_model(lipsync_settings)
    if faces_json and _newer_than_avatar(faces_json, avatar):
        read_faces(faces_json, avatar, model, job)
        return
    check_first_face(avatar, model, job)


def _newer_than_avatar(path: str, avatar: Avatar) -> bool:
    import os

    try:
        return os.stat(path).st_mtime_ns >= avatar.mtime_ns
    except OSError:
        return False
