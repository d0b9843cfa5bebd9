"""Faces of an avatar: a face box and 68 landmarks per frame, found once per avatar.

Two landmark models:
- `dlib68`: dlib's frontal face detector and its 68-point shape predictor (the iBUG 300-W
  layout: 0-16 jaw, 17-26 brows, 27-35 nose, 36-47 eyes, 48-59 outer lips, 60-67 inner lips).
  The predictor file ships in the `face-recognition-models` package. It was trained on iBUG
  300-W, whose terms exclude commercial use.
- `haar`: OpenCV's Haar frontal-face cascade (no such restriction) with a fixed 68-point
  template placed in the face box, measured on the default avatar with dlib68.
A configured `mouth_box` places the same template by its lips instead of detecting anything.

Both engines read the same faces: the procedural engine warps a mesh over the landmarks, the
Wav2Lip engine crops its face boxes. The workflow computes them once per avatar into a JSON
file (`write_faces`) that every chunk of every job with that avatar reads (`read_faces`).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vestnik.avatar import Avatar
from vestnik.errors import VestnikError
from vestnik.io import write_json

log = logging.getLogger("vestnik")

Box = tuple[int, int, int, int]
"""x, y, width, height in pixels."""

LANDMARK_MODELS = ("dlib68", "haar")
FACES_FORMAT = 1
"""Version of the faces file layout; a file of another version is refused as stale."""
DETECT_MAX_SIDE = 640
"""Frames are searched at most this large: both detectors are scale-invariant."""
SMOOTH_FRAMES = 5
"""Moving-average length for a video avatar's landmarks: removes fitting jitter."""
MAX_GAP = 12
"""Frames a video may go without a detected face before its face stops being animated."""
REDETECT_FRAMES = 25
"""A video's face is re-detected this often; between detections the last fit is the hint."""
MIN_FACE = 64
"""Narrowest face (jaw width, pixels) animated without a warning: below it the mouth spans a few
pixels. dlib finds no face under about 40 pixels, which is then the "no face" error."""
OTHER_FACE_SCORE = 0.5
"""dlib detector score a second face needs to count (weaker hits are mostly texture)."""
MAX_YAW = 0.3
"""Largest offset of the nose tip from the eyes' midpoint, in eye distances: beyond it the
face is turned too far for a frontal mesh (a profile view)."""
EDGE_MARGIN = 2
"""Landmarks closer than this to the frame's border mean the face is cut by the edge."""
EYE_LINE = 0.385
"""Height of the eyes' centre below a Haar face box's top, in box sides."""

TEMPLATE = np.array(
    [
        [0.022, 0.398], [0.032, 0.527], [0.043, 0.645], [0.054, 0.774], [0.086, 0.892],
        [0.151, 1.0], [0.247, 1.086], [0.344, 1.172], [0.462, 1.194], [0.591, 1.183],
        [0.71, 1.118], [0.817, 1.032], [0.892, 0.935], [0.946, 0.817], [0.978, 0.688],
        [1.0, 0.57], [1.022, 0.441], [0.097, 0.29], [0.161, 0.226], [0.247, 0.215],
        [0.333, 0.237], [0.419, 0.269], [0.634, 0.28], [0.72, 0.258], [0.806, 0.258],
        [0.892, 0.269], [0.946, 0.344], [0.527, 0.376], [0.516, 0.473], [0.516, 0.559],
        [0.516, 0.645], [0.398, 0.688], [0.452, 0.71], [0.505, 0.72], [0.559, 0.71],
        [0.613, 0.699], [0.194, 0.366], [0.247, 0.333], [0.323, 0.333], [0.376, 0.398],
        [0.312, 0.398], [0.237, 0.398], [0.645, 0.419], [0.71, 0.355], [0.785, 0.355],
        [0.839, 0.409], [0.785, 0.43], [0.72, 0.43], [0.258, 0.774], [0.344, 0.774],
        [0.441, 0.774], [0.505, 0.796], [0.57, 0.785], [0.656, 0.785], [0.742, 0.796],
        [0.656, 0.903], [0.559, 0.946], [0.484, 0.957], [0.419, 0.946], [0.333, 0.892],
        [0.29, 0.796], [0.441, 0.817], [0.495, 0.828], [0.57, 0.817], [0.71, 0.806],
        [0.559, 0.892], [0.495, 0.903], [0.43, 0.892],
    ],
    dtype=np.float64,
)  # fmt: skip
"""The 68 landmarks as fractions of a Haar frontal-face box (dlib68 on resources/avatar.png)."""
OUTER_LIPS = slice(48, 60)

_lock = threading.Lock()
_cache: dict[tuple, list[Face | None]] = {}


@dataclass(frozen=True)
class Face:
    """One frame's face: a Haar-style box (forehead to lower lip, for Wav2Lip's crops) and
    68 landmarks (float32, pixels)."""

    box: Box
    points: np.ndarray

    @property
    def width(self) -> float:
        """Face width: jaw point 0 to jaw point 16, the unit of every facial motion."""
        return float(np.linalg.norm(self.points[16] - self.points[0]))

    @property
    def mouth_box(self) -> Box:
        """Bounding box of the outer lips."""
        lips = self.points[OUTER_LIPS]
        x0, y0 = np.floor(lips.min(axis=0)).astype(int)
        x1, y1 = np.ceil(lips.max(axis=0)).astype(int)
        return int(x0), int(y0), int(max(2, x1 - x0)), int(max(2, y1 - y0))


def _face(box: Box, points: np.ndarray) -> Face:
    return Face(tuple(int(round(v)) for v in box), np.asarray(points, dtype=np.float32))


def face_from_haar(box: Box) -> Face:
    """The template's 68 points placed in a Haar face box."""
    x, y, w, h = box
    return _face(box, TEMPLATE * [w, h] + [x, y])


def face_from_mouth_box(box: Box) -> Face:
    """The template placed so that its outer lips fill `box` [x, y, width, height]."""
    x, y, w, h = box
    lips = TEMPLATE[OUTER_LIPS]
    (lx, ly), (hx, hy) = lips.min(axis=0), lips.max(axis=0)
    side_w, side_h = w / (hx - lx), h / (hy - ly)
    return face_from_haar((x - lx * side_w, y - ly * side_h, side_w, side_h))


def box_from_points(points: np.ndarray) -> Box:
    """Haar-style face box of 68 landmarks: a square as wide as the jaw, eyes at EYE_LINE."""
    side = float(np.linalg.norm(points[16] - points[0]))
    centre_x = float(points[[0, 16], 0].mean())
    eyes_y = float(points[36:48, 1].mean())
    return _face((centre_x - side / 2, eyes_y - EYE_LINE * side, side, side), points).box


# --- detectors ----------------------------------------------------------------------------


@functools.cache
def _cascade(name: str) -> cv2.CascadeClassifier:
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + name)
    if cascade.empty():
        raise RuntimeError(f"OpenCV's {name} could not be loaded")
    return cascade


def _grey(frame_bgr: np.ndarray) -> tuple[np.ndarray, float]:
    grey = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY) if frame_bgr.ndim == 3 else frame_bgr
    scale = min(1.0, DETECT_MAX_SIDE / max(grey.shape[:2]))
    if scale < 1.0:
        grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return cv2.equalizeHist(grey), scale


def haar_faces(frame_bgr: np.ndarray, cascade: str = "haarcascade_frontalface_default.xml"):
    """Every Haar face in a BGR frame, largest first, as boxes in frame pixels."""
    grey, scale = _grey(frame_bgr)
    min_side = max(24, min(grey.shape[:2]) // 10)
    found = _cascade(cascade).detectMultiScale(
        grey, scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side)
    )
    boxes = [tuple(int(round(v / scale)) for v in face) for face in found]
    return sorted(boxes, key=lambda b: -b[2] * b[3])


def detect_face(frame_bgr: np.ndarray) -> Box | None:
    """The largest Haar frontal face in a BGR frame, or None."""
    faces = haar_faces(frame_bgr)
    return faces[0] if faces else None


def model_file(name: str) -> Path:
    """A model file of the face-recognition-models package, found without importing it
    (its __init__ needs pkg_resources, which new setuptools no longer ship)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise VestnikError(
            "lipsync.landmarks is dlib68 but the face-recognition-models package is not "
            "installed (pip install face-recognition-models dlib-bin), or set "
            "lipsync.landmarks: haar"
        )
    return Path(spec.submodule_search_locations[0]) / "models" / name


@functools.cache
def _dlib():
    try:
        import dlib
    except ImportError:
        raise VestnikError(
            "lipsync.landmarks is dlib68 but dlib is not installed (pip install dlib-bin), or "
            "set lipsync.landmarks: haar"
        ) from None
    predictor = dlib.shape_predictor(str(model_file("shape_predictor_68_face_landmarks.dat")))
    return dlib, dlib.get_frontal_face_detector(), predictor


def _fit(rgb: np.ndarray, rect) -> np.ndarray:
    _, _, predictor = _dlib()
    shape = predictor(rgb, rect)
    return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)


def dlib_faces(frame_bgr: np.ndarray) -> list[np.ndarray]:
    """68 landmarks of every dlib frontal face (score >= OTHER_FACE_SCORE), largest first."""
    dlib, detector, _ = _dlib()
    scale = min(1.0, DETECT_MAX_SIDE / max(frame_bgr.shape[:2]))
    small = frame_bgr if scale == 1.0 else cv2.resize(frame_bgr, None, fx=scale, fy=scale)
    rgb = np.ascontiguousarray(small[:, :, ::-1])
    found = []
    for upsample in (0, 1):  # 1 finds faces down to about 40 px, at four times the cost
        rects, scores, _ = detector.run(rgb, upsample, 0.0)
        found = [r for r, score in zip(rects, scores, strict=True) if score >= OTHER_FACE_SCORE]
        if found:
            break
    full = np.ascontiguousarray(frame_bgr[:, :, ::-1])
    faces = []
    for rect in sorted(found, key=lambda r: -r.width() * r.height()):
        big = dlib.rectangle(
            *(int(round(v / scale)) for v in (rect.left(), rect.top(), rect.right(), rect.bottom()))
        )
        faces.append(_fit(full, big))
    return faces


def _refit(frame_bgr: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """Landmarks fitted from the previous frame's face: tracking without a detection."""
    dlib, _, _ = _dlib()
    x0, y0 = previous.min(axis=0)
    x1, y1 = previous.max(axis=0)
    rect = dlib.rectangle(int(x0), int(y0), int(x1), int(y1))
    return _fit(np.ascontiguousarray(frame_bgr[:, :, ::-1]), rect)


# --- checks -------------------------------------------------------------------------------


def _describe(avatar: Avatar, frame: int) -> str:
    return f"avatar frame {frame}" if avatar.is_video else "the avatar"


def check_face(face: Face, avatar: Avatar, frame: int, job: str | None) -> None:
    """Refuse a face that cannot be animated: too small, turned away, or cut by the edge."""
    where = _describe(avatar, frame)
    if face.width < MIN_FACE:
        log.warning(
            "%s%s: the face in %s is %.0f px wide, smaller than %d px; it is animated, but its "
            "mouth spans a few pixels (use a larger or closer portrait)",
            f"job {job}: " if job else "", avatar.path, where, face.width, MIN_FACE,
        )
    points = face.points
    eye_distance = float(np.linalg.norm(points[45] - points[36]))
    yaw = abs(float(points[30, 0] - (points[36, 0] + points[45, 0]) / 2)) / max(eye_distance, 1)
    if yaw > MAX_YAW:
        raise VestnikError(
            f"the face in {where} is turned aside (nose {yaw:.2f} eye distances off the eyes' "
            "midpoint: a profile view); a frontal portrait is needed",
            job=job,
            path=avatar.path,
        )
    x, y, w, h = face.box
    lo = points.min(axis=0)
    hi = points.max(axis=0)
    if (
        lo[0] < EDGE_MARGIN
        or lo[1] < EDGE_MARGIN
        or hi[0] > avatar.width - 1 - EDGE_MARGIN
        or hi[1] > avatar.height - 1 - EDGE_MARGIN
        or x < 0
        or x + w > avatar.width
    ):
        raise VestnikError(
            f"the face in {where} is cut by the frame's edge; the whole face, chin included, "
            "must be inside the picture",
            job=job,
            path=avatar.path,
        )


def _no_face(avatar: Avatar, frame_bgr: np.ndarray, model: str, job: str | None):
    profile = haar_faces(frame_bgr, "haarcascade_profileface.xml") or haar_faces(
        np.ascontiguousarray(frame_bgr[:, ::-1]), "haarcascade_profileface.xml"
    )
    if profile:
        reason = "only a face in profile was found; a frontal portrait is needed"
    else:
        detector = "dlib" if model == "dlib68" else "OpenCV Haar"
        reason = f"no face found in {avatar.path} ({detector} frontal-face detector)"
    return VestnikError(
        f"{reason}; set lipsync.procedural.mouth_box to [x, y, width, height] to place the "
        "mouth by hand",
        job=job,
        path=avatar.path,
    )


def _several(avatar: Avatar, count: int, face: Face, job: str | None) -> None:
    if count > 1:
        log.warning(
            "%s%s shows %d faces; animating the largest, at %s",
            f"job {job}: " if job else "",
            avatar.path,
            count,
            list(face.box),
        )


def check_mouth_box(box: object, avatar: Avatar, job: str | None) -> Box:
    """A configured `mouth_box` as four integers inside the avatar, or a VestnikError."""
    try:
        x, y, w, h = (int(v) for v in box)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise VestnikError(
            f"lipsync.mouth_box must be four integers [x, y, width, height], got {box!r}",
            job=job,
            path=avatar.path,
        ) from None
    if w <= 0 or h <= 0:
        raise VestnikError(
            f"lipsync.mouth_box {[x, y, w, h]} has zero size (width {w}, height {h}); give the "
            "lips' width and height in pixels",
            job=job,
            path=avatar.path,
        )
    if w < 2 or h < 2 or x < 0 or y < 0 or x + w > avatar.width or y + h > avatar.height:
        raise VestnikError(
            f"lipsync.mouth_box {[x, y, w, h]} is not inside the {avatar.width}x{avatar.height} "
            "avatar",
            job=job,
            path=avatar.path,
        )
    return x, y, w, h


# --- tracking -----------------------------------------------------------------------------


def _fill_gaps(faces: list[Face | None]) -> list[Face | None]:
    """Reuse the nearest fitted face for gaps of at most MAX_GAP frames (earlier face first)."""
    filled = list(faces)
    for order in (range(len(faces)), range(len(faces) - 1, -1, -1)):
        last, age = None, 0
        for i in order:
            if faces[i] is not None:
                last, age = faces[i], 0
            else:
                age += 1
                if filled[i] is None and last is not None and age <= MAX_GAP:
                    filled[i] = last
    return filled


def _smooth(faces: list[Face | None]) -> list[Face | None]:
    """Centred moving average of the landmarks over SMOOTH_FRAMES frames that have a face."""
    half = SMOOTH_FRAMES // 2
    smoothed: list[Face | None] = []
    for i, face in enumerate(faces):
        if face is None:
            smoothed.append(None)
            continue
        window = [f for f in faces[max(0, i - half) : i + half + 1] if f is not None]
        points = np.mean([f.points for f in window], axis=0)
        box = np.mean([f.box for f in window], axis=0)
        smoothed.append(_face(tuple(box), points))
    return smoothed


def _fit_first(avatar: Avatar, model: str, index: int) -> tuple[Face | None, int]:
    frame = avatar.frames[index]
    if model == "dlib68":
        found = dlib_faces(frame)
        return (_face(box_from_points(found[0]), found[0]) if found else None), len(found)
    boxes = haar_faces(frame)
    return (face_from_haar(boxes[0]) if boxes else None), len(boxes)


def track_faces(avatar: Avatar, model: str, job: str | None = None) -> list[Face | None]:
    """The face of every avatar frame (one entry for a still), checked before any render.

    A still gets one fit. A video is detected on its first frame and every REDETECT_FRAMES
    frames, fitted from the previous frame's landmarks in between (dlib68), its gaps of up to
    MAX_GAP frames take the nearest face, and the landmarks are smoothed over SMOOTH_FRAMES.
    No face, or a face turned aside or cut by the edge, is a VestnikError naming the job and
    the avatar; several faces animate the largest, and a face under MIN_FACE pixels is
    animated, each with a warning.
    """
    if model not in LANDMARK_MODELS:
        raise VestnikError(
            f"lipsync.landmarks must be one of {', '.join(LANDMARK_MODELS)}, not {model!r}",
            job=job,
        )
    faces: list[Face | None] = []
    checked = False
    for index, frame in enumerate(avatar.frames):
        previous = faces[-1] if faces else None
        if model == "dlib68" and previous is not None and index % REDETECT_FRAMES:
            points = _refit(frame, previous.points)
            faces.append(_face(box_from_points(points), points))
            continue
        face, count = _fit_first(avatar, model, index)
        if face is not None and not checked:
            check_face(face, avatar, index, job)
            _several(avatar, count, face, job)
            checked = True
        faces.append(face)
    if not checked:
        raise _no_face(avatar, avatar.frames[0], model, job)
    if avatar.is_video:
        faces = _smooth(_fill_gaps(faces))
    return faces


def check_first_face(avatar: Avatar, model: str, job: str | None = None) -> Face:
    """The first frame's face, checked: the cheap test a job runs before any heavy work."""
    face, count = _fit_first(avatar, model, 0)
    if face is None:
        if not avatar.is_video:
            raise _no_face(avatar, avatar.frames[0], model, job)
        return next(f for f in track_faces(avatar, model, job) if f is not None)
    check_face(face, avatar, 0, job)
    _several(avatar, count, face, job)
    return face


def _cache_key(avatar: Avatar, model: str) -> tuple:
    return (str(avatar.path.resolve()), avatar.mtime_ns, avatar.width, avatar.height, model)


def avatar_faces(
    avatar: Avatar,
    model: str,
    *,
    mouth_box: object | None = None,
    faces_file: str | Path | None = None,
    job: str | None = None,
) -> list[Face | None]:
    """Face per avatar frame (index with `i % len`): from `mouth_box` when given, else from
    the workflow's faces file when given, else tracked here (cached in-process by path,
    mtime and model)."""
    if mouth_box is not None:
        return [face_from_mouth_box(check_mouth_box(mouth_box, avatar, job))]
    if faces_file is not None:
        return read_faces(faces_file, avatar, model, job)
    key = _cache_key(avatar, model)
    with _lock:
        faces = _cache.get(key)
    if faces is None:
        faces = track_faces(avatar, model, job)
        with _lock:
            _cache[key] = faces
    return list(faces)


def find_mouth_box(
    avatar: Avatar, mouth_box: object | None = None, job: str | None = None, model: str = "haar"
) -> list[Box | None]:
    """Outer-lip box per avatar frame (see `avatar_faces`)."""
    faces = avatar_faces(avatar, model, mouth_box=mouth_box, job=job)
    return [None if face is None else face.mouth_box for face in faces]


# --- the faces file -----------------------------------------------------------------------


def avatar_slug(path: str | Path) -> str:
    """A folder name for an avatar path: its stem and a short hash of the whole path."""
    text = str(path)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(text).stem)[:40] or "avatar"
    return f"{stem}-{hashlib.sha1(text.encode('utf-8')).hexdigest()[:8]}"


def faces_path(avatar_path: str | Path, model: str) -> str:
    """Where the workflow keeps an avatar's faces for one landmark model."""
    from vestnik import layout

    return layout.AVATAR_FACES.format(avatar=avatar_slug(avatar_path), model=model)


def write_faces(path: str | Path, avatar: Avatar, model: str, faces: list[Face | None]) -> None:
    """Store faces as JSON (atomically), with what they were fitted on."""
    write_json(
        path,
        {
            "format": FACES_FORMAT,
            "avatar": str(avatar.path),
            "model": model,
            "size": [avatar.width, avatar.height],
            "frames": [
                None
                if face is None
                else {"box": list(face.box), "points": np.round(face.points, 2).tolist()}
                for face in faces
            ],
        },
    )


def read_faces(path: str | Path, avatar: Avatar, model: str, job: str | None) -> list[Face | None]:
    """Faces from a file written by `write_faces`, refused if fitted on another avatar."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise VestnikError(f"cannot read the avatar's faces ({exc})", job=job, path=path) from None
    expected = (FACES_FORMAT, model, [avatar.width, avatar.height], avatar.n_frames)
    found = (data.get("format"), data.get("model"), data.get("size"), len(data.get("frames", [])))
    if found != expected:
        raise VestnikError(
            f"the faces file does not match the avatar {avatar.path} (format, model, size, "
            f"frames: {found} != {expected}); delete it to refit",
            job=job,
            path=path,
        )
    return [
        None if row is None else _face(tuple(row["box"]), np.array(row["points"]))
        for row in data["frames"]
    ]
