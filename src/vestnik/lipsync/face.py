"""Face and mouth location with OpenCV's Haar cascade (no weights to download).

A Haar frontal-face box runs from the forehead to just below the lower lip, so the mouth sits
at fixed proportions inside it; that is accurate enough for a warp whose falloff is soft.
"""

from __future__ import annotations

import functools
import threading

import cv2
import numpy as np

from vestnik.avatar import Avatar
from vestnik.errors import VestnikError

Box = tuple[int, int, int, int]
"""x, y, width, height in pixels."""

DETECT_MAX_SIDE = 640
"""Frames are searched at most this large: Haar is scale-invariant and large frames are slow."""
SMOOTH_FRAMES = 5
"""Moving-average length for a video avatar's mouth boxes: removes detector jitter."""
MAX_GAP = 12
"""Frames a video may go without a detected face before its mouth stops being animated."""

MOUTH_LEFT, MOUTH_TOP, MOUTH_WIDTH, MOUTH_HEIGHT = 0.25, 0.75, 0.5, 0.2
"""Mouth box as fractions of the face box (measured on frontal faces such as the astronaut)."""

_lock = threading.Lock()
_tracks: dict[tuple, list[Box | None]] = {}


@functools.cache
def _cascade() -> cv2.CascadeClassifier:
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    if cascade.empty():
        raise RuntimeError("OpenCV's haarcascade_frontalface_default.xml could not be loaded")
    return cascade


def detect_face(frame_bgr: np.ndarray) -> Box | None:
    """The largest frontal face in a BGR frame, or None; searched on equalised grey."""
    grey = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY) if frame_bgr.ndim == 3 else frame_bgr
    scale = min(1.0, DETECT_MAX_SIDE / max(grey.shape[:2]))
    if scale < 1.0:
        grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    grey = cv2.equalizeHist(grey)
    min_side = max(24, min(grey.shape[:2]) // 10)
    faces = _cascade().detectMultiScale(
        grey, scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side)
    )
    if len(faces) == 0:
        return None
    x, y, w, h = max(faces, key=lambda f: int(f[2]) * int(f[3]))
    return tuple(int(round(v / scale)) for v in (x, y, w, h))


def mouth_box_from_face(face: Box) -> Box:
    """Mouth box from a face box: centred, half the face wide, in the lowest quarter."""
    x, y, w, h = face
    return (
        int(round(x + MOUTH_LEFT * w)),
        int(round(y + MOUTH_TOP * h)),
        max(2, int(round(MOUTH_WIDTH * w))),
        max(2, int(round(MOUTH_HEIGHT * h))),
    )


def _check_box(box: object, avatar: Avatar, job: str | None) -> Box:
    try:
        x, y, w, h = (int(v) for v in box)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise VestnikError(
            f"lipsync.mouth_box must be four integers [x, y, width, height], got {box!r}",
            job=job,
            path=avatar.path,
        ) from None
    if w < 2 or h < 2 or x < 0 or y < 0 or x + w > avatar.width or y + h > avatar.height:
        raise VestnikError(
            f"lipsync.mouth_box {[x, y, w, h]} is not inside the {avatar.width}x{avatar.height} "
            "avatar",
            job=job,
            path=avatar.path,
        )
    return x, y, w, h


def _fill_gaps(boxes: list[Box | None]) -> list[Box | None]:
    """Reuse the nearest detected box for gaps of at most MAX_GAP frames (earlier box first)."""
    filled = list(boxes)
    last, age = None, 0
    for i, box in enumerate(boxes):
        if box is not None:
            last, age = box, 0
        else:
            age += 1
            if last is not None and age <= MAX_GAP:
                filled[i] = last
    nxt, age = None, 0
    for i in range(len(boxes) - 1, -1, -1):
        if boxes[i] is not None:
            nxt, age = boxes[i], 0
        else:
            age += 1
            if filled[i] is None and nxt is not None and age <= MAX_GAP:
                filled[i] = nxt
    return filled


def _smooth(boxes: list[Box | None]) -> list[Box | None]:
    """Centred moving average over SMOOTH_FRAMES of the frames that have a box."""
    half = SMOOTH_FRAMES // 2
    smoothed: list[Box | None] = []
    for i, box in enumerate(boxes):
        if box is None:
            smoothed.append(None)
            continue
        window = [b for b in boxes[max(0, i - half) : i + half + 1] if b is not None]
        mean = np.mean(np.array(window, dtype=np.float64), axis=0)
        smoothed.append(tuple(int(round(v)) for v in mean))
    return smoothed


def _track(avatar: Avatar) -> list[Box | None]:
    faces = [detect_face(frame) for frame in avatar.frames]
    mouths = [None if face is None else mouth_box_from_face(face) for face in faces]
    if avatar.is_video:
        mouths = _smooth(_fill_gaps(mouths))
    return mouths


def find_mouth_box(
    avatar: Avatar, mouth_box: object | None = None, job: str | None = None
) -> list[Box | None]:
    """Mouth box for every avatar frame (one entry for a still image), index with `i % len`.

    A configured `mouth_box` [x, y, w, h] wins. Otherwise faces are detected once per avatar
    file version (cached in-process by path and mtime); a video is tracked per frame, gaps of
    up to MAX_GAP frames reuse the nearest box and the boxes are smoothed over SMOOTH_FRAMES.
    Frames left with None (a face missing for longer) are shown unanimated. No face anywhere
    and no `mouth_box` is a VestnikError.
    """
    if mouth_box is not None:
        return [_check_box(mouth_box, avatar, job)]
    key = (str(avatar.path.resolve()), avatar.mtime_ns, avatar.width, avatar.height)
    with _lock:
        track = _tracks.get(key)
    if track is None:
        track = _track(avatar)
        with _lock:
            _tracks[key] = track
    if all(box is None for box in track):
        raise VestnikError(
            f"no face found in {avatar.path}; set lipsync.mouth_box to [x, y, width, height]",
            job=job,
            path=avatar.path,
        )
    return list(track)
