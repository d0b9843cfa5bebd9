"""Avatar loading: a still image or a looped video, as BGR frames of an even size.

H.264 in yuv420p needs even widths and heights, so a trailing odd row or column is cropped
here once, and every engine then renders frames of exactly `Avatar.width` x `Avatar.height`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vestnik.errors import VestnikError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".avi", ".webm", ".mkv"})
MIN_SIDE = 32
"""Smallest usable side: below this there is no face to animate."""
MAX_SIDE = 4096
"""Largest accepted side; bigger avatars are refused rather than silently downscaled."""
MAX_VIDEO_BYTES = 2 * 1024**3
"""Video avatars are decoded into memory once; this bounds how much they may take."""


@dataclass(frozen=True)
class Avatar:
    """Frames of an avatar; `frame(i)` loops a video, so any global frame index is valid."""

    path: Path
    frames: tuple[np.ndarray, ...]
    is_video: bool
    fps: float | None
    mtime_ns: int

    @property
    def height(self) -> int:
        return int(self.frames[0].shape[0])

    @property
    def width(self) -> int:
        return int(self.frames[0].shape[1])

    @property
    def n_frames(self) -> int:
        return len(self.frames)

    def frame(self, index: int) -> np.ndarray:
        """BGR uint8 frame for global frame `index` (read-only; copy before drawing on it)."""
        return self.frames[index % len(self.frames)]


def _even(frame: np.ndarray) -> np.ndarray:
    height, width = frame.shape[:2]
    return np.ascontiguousarray(frame[: height - height % 2, : width - width % 2])


def _check_size(width: int, height: int, path: Path, job: str | None) -> None:
    if width < MIN_SIDE or height < MIN_SIDE:
        raise VestnikError(
            f"avatar is {width}x{height}, smaller than {MIN_SIDE}x{MIN_SIDE}", job=job, path=path
        )
    if width > MAX_SIDE or height > MAX_SIDE:
        raise VestnikError(
            f"avatar is {width}x{height}, larger than {MAX_SIDE} pixels on a side; "
            "downscale it (a talking head needs far less)",
            job=job,
            path=path,
        )


def _as_bgr(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    return frame


def _to_uint8(frame: np.ndarray) -> np.ndarray:
    if frame.dtype == np.uint8:
        return frame
    if frame.dtype == np.uint16:
        return (frame >> 8).astype(np.uint8)
    return np.clip(frame, 0, 255).astype(np.uint8)


def header_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from a PNG or JPEG header, read without decoding; None for other files.

    Lets an oversized image be refused before decoding it takes gigabytes of memory.
    """
    with open(path, "rb") as handle:
        head = handle.read(26)
        if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
            return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
        if head[:2] != b"\xff\xd8":
            return None
        handle.seek(2)
        while True:
            marker = handle.read(4)
            if len(marker) < 4 or marker[0] != 0xFF:
                return None
            kind, length = marker[1], int.from_bytes(marker[2:4], "big")
            if 0xC0 <= kind <= 0xCF and kind not in (0xC4, 0xC8, 0xCC):
                frame = handle.read(5)
                if len(frame) < 5:
                    return None
                return int.from_bytes(frame[3:5], "big"), int.from_bytes(frame[1:3], "big")
            handle.seek(length - 2, os.SEEK_CUR)


def _read_image(path: Path, job: str | None) -> list[np.ndarray]:
    size = header_size(path)
    if size is not None:
        _check_size(*size, path, job)
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise VestnikError(
            "cannot read the avatar image (corrupt or unsupported)", job=job, path=path
        )
    image = _as_bgr(_to_uint8(image))
    _check_size(image.shape[1], image.shape[0], path, job)
    return [image]


def _read_video(path: Path, job: str | None) -> tuple[list[np.ndarray], float | None]:
    capture = cv2.VideoCapture(str(path))
    frames: list[np.ndarray] = []
    total = 0
    try:
        fps = capture.get(cv2.CAP_PROP_FPS) if capture.isOpened() else 0.0
        while capture.isOpened():
            ok, frame = capture.read()
            if not ok or frame is None:
                break
            if not frames:
                _check_size(frame.shape[1], frame.shape[0], path, job)
            total += frame.nbytes
            if total > MAX_VIDEO_BYTES:
                raise VestnikError(
                    f"video avatar needs more than {MAX_VIDEO_BYTES // 1024**3} GiB decoded "
                    f"({len(frames)} frames of {frame.shape[1]}x{frame.shape[0]} so far); "
                    "use a shorter or smaller loop",
                    job=job,
                    path=path,
                )
            frames.append(_as_bgr(frame))
    finally:
        capture.release()
    if not frames:
        raise VestnikError("video avatar has no decodable frames", job=job, path=path)
    return frames, (float(fps) if fps and fps > 0 else None)


def load_avatar(path: str | os.PathLike, *, job: str | None = None) -> Avatar:
    """Load an image or a video avatar, cropped to even sizes.

    Images use cv2.imread (grey and alpha images become BGR); videos are decoded in full with
    cv2.VideoCapture and looped by `Avatar.frame`. Avatars smaller than 32x32 or larger than
    4096 on a side are refused with a VestnikError naming the job and file, as are missing or
    unreadable files and videos without frames.
    """
    source = Path(path)
    if not source.is_file():
        raise VestnikError("avatar file not found", job=job, path=source)
    suffix = source.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        frames, fps = _read_video(source, job)
        is_video = True
    elif suffix in IMAGE_SUFFIXES:
        frames, fps, is_video = _read_image(source, job), None, False
    else:
        known = ", ".join(sorted(IMAGE_SUFFIXES | VIDEO_SUFFIXES))
        raise VestnikError(
            f"unsupported avatar type '{suffix}' (expected one of {known})", job=job, path=source
        )
    even = []
    for frame in frames:
        cropped = _even(frame)
        cropped.setflags(write=False)
        even.append(cropped)
    return Avatar(
        path=source,
        frames=tuple(even),
        is_video=is_video,
        fps=fps,
        mtime_ns=source.stat().st_mtime_ns,
    )
