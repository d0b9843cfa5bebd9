"""The `procedural` lip-sync engine: a talking head made by warping the avatar, no weights.

Each frame moves the avatar's 68 facial landmarks (plus forehead points and two rings around
the face) by viseme shapes, blinks, brow lifts and head motion, then warps the picture with a
triangulated piecewise-affine mesh over those points: every triangle of the moved mesh samples
the matching triangle of the avatar. The inner ring takes half of the head's motion and the
outer ring none, so the displacement fades continuously to zero and no seam shows. Inside the
inner lips a mouth is painted: a dark interior, deeper towards its middle and its corners,
upper teeth fixed to the skull, lower teeth moving with the jaw, a hint of tongue, all with a
feathered edge. The mesh is computed on a half-resolution grid and interpolated.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from vestnik.avatar import Avatar
from vestnik.config import block_schema, engine_settings
from vestnik.errors import VestnikError
from vestnik.lipsync import life
from vestnik.lipsync.chunk import ChunkJob
from vestnik.lipsync.face import Face, avatar_faces, check_mouth_box
from vestnik.lipsync.visemes import (
    has_timings,
    openness_from_audio,
    visemes_from_events,
)

RING_SCALES = ((1.35, 1.5), (1.85, 2.0))
"""Rings of mesh points around the face, as multiples of its half-width and half-height: the
inner one takes half the head's motion, the outer one stays put."""
SMOOTH_FIELD = 1.0
"""Sigma (coarse-grid pixels) of the blur over the displacement field: it rounds the mesh's
creases, so the motion fades out smoothly at the rings instead of at a visible line."""
RING_POINTS = 16
FOREHEAD = 0.3
"""Height of the forehead points above the brows, in face widths."""
TEETH_COLOR = (208, 220, 228)
TONGUE_COLOR = (92, 88, 172)
DEPTH_SHADE = 0.6
"""How much darker the middle of the mouth is than its edges (the throat is in shadow)."""
UPPER_TEETH = 0.02
"""How far the upper incisors reach below the lips' resting line, in face widths."""
LOWER_TEETH = 0.01
"""How far below the lips' resting line the lower incisors' tips sit, in face widths (they
show only when the jaw drops, the lower lip dropping further than they do)."""
LOWER_TEETH_JAW = 0.8
"""Share of the lower lip's drop that the lower teeth (fixed to the jaw) make."""
EMPHASIS_TIMING = {"attack": 0.12, "release": 0.25, "lead": 0.0}
"""Slow smoothing of the audio level whose peaks dip the head when no phonemes are known."""
GRID_STEP = 2
"""The mesh is evaluated every GRID_STEP pixels and interpolated between."""

# Displacements of landmarks per unit of each viseme channel, in face widths along the face's
# own axes (x towards the avatar's left eye corner 45, y down). `open` is per unit of the gap.
_OPEN_JAW = {2: 0.03, 3: 0.1, 4: 0.25, 5: 0.45, 6: 0.62, 7: 0.75, 8: 0.8, 9: 0.75, 10: 0.62,
             11: 0.45, 12: 0.25, 13: 0.1, 14: 0.03}  # fmt: skip
_OPEN_LOWER_LIP = {55: 0.65, 56: 0.9, 57: 1.0, 58: 0.9, 59: 0.65, 65: 0.85, 66: 1.0, 67: 0.85,
                   48: 0.35, 54: 0.35, 60: 0.4, 64: 0.4}  # fmt: skip
_OPEN_UPPER_LIP = {61: 0.8, 62: 1.0, 63: 0.8, 49: 0.3, 50: 0.6, 51: 0.65, 52: 0.6, 53: 0.3}
_CORNERS = (48, 60, 54, 64)
_NEAR_CORNERS = (49, 59, 61, 67, 53, 55, 63, 65)
_MIDDLE = (50, 58, 52, 56)


def _side(index: int) -> float:
    """-1 for the avatar's right half of the mouth (points nearer jaw point 0), +1 else."""
    return -1.0 if index in (48, 60, 49, 59, 61, 67, 50, 58) else 1.0


def _basis() -> dict[str, dict[int, tuple[float, float]]]:
    """Landmark displacements of each channel (face widths; see the comment above)."""
    open_ = {i: (0.0, w) for i, w in _OPEN_JAW.items()}
    open_.update({i: (0.0, w) for i, w in _OPEN_LOWER_LIP.items()})
    open_.update({i: (0.0, -w) for i, w in _OPEN_UPPER_LIP.items()})
    for i in _CORNERS:
        open_[i] = (-0.05 * _side(i), open_[i][1])
    spread, round_, press, labio = {}, {}, {}, {}
    weights = [(1.0, 1.0)] * 4 + [(0.55, 0.6)] * 8 + [(0.2, 0.2)] * 4
    for i, (out, inward) in zip((*_CORNERS, *_NEAR_CORNERS, *_MIDDLE), weights, strict=True):
        spread[i] = (0.045 * out * _side(i), -0.006 * out)
        round_[i] = (-0.06 * inward * _side(i), 0.0)
    for i in (49, 50, 51, 52, 53):
        round_[i] = (round_.get(i, (0.0, 0.0))[0], -0.012)
        press[i] = (0.0, 0.01)
    for i in (55, 56, 57, 58, 59):
        round_[i] = (round_.get(i, (0.0, 0.0))[0], 0.012)
        press[i] = (0.0, -0.01)
    for i in (61, 62, 63):
        round_[i] = (round_[i][0] if i in round_ else 0.0, -0.006)
        labio[i] = (0.0, -0.02)
    for i in (65, 66, 67):
        round_[i] = (round_[i][0] if i in round_ else 0.0, 0.006)
        labio[i] = (0.0, -0.035)
    for i in (55, 56, 57, 58, 59):
        labio[i] = (0.0, -0.03)
    for i in (50, 51, 52):
        labio[i] = (0.0, -0.012)
    brow = {i: (0.0, -0.03 if 19 <= i <= 24 else -0.022) for i in range(17, 27)}
    brow.update({i: (0.0, -0.006) for i in (37, 38, 43, 44)})
    return {"open": open_, "spread": spread, "round": round_, "press": press,
            "labiodental": labio, "brow": brow}  # fmt: skip


BASIS = _basis()
LIP_CHANNELS = ("spread", "round", "press", "labiodental")


@dataclass
class Pose:
    """One frame's face: viseme channels 0..1, eyelid closure, brow lift, head motion."""

    open: float = 0.0
    spread: float = 0.0
    round: float = 0.0
    press: float = 0.0
    labiodental: float = 0.0
    blink: float = 0.0
    brow: float = 0.0
    head: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """x and y in face widths, roll in radians."""

    def still(self) -> bool:
        values = (self.open, self.spread, self.round, self.press, self.labiodental, self.blink)
        return not any(values) and not self.brow and not any(self.head)


@dataclass
class _Mesh:
    """One avatar face's rest mesh and displacement bases (pixels), over its region."""

    rest: np.ndarray
    bases: dict[str, np.ndarray]
    head_weight: np.ndarray
    pivot: np.ndarray
    axes: np.ndarray
    width: float
    roi: tuple[int, int, int, int]
    seam: np.ndarray
    triangles: np.ndarray | None = None


def _axes(points: np.ndarray) -> np.ndarray:
    """Unit x (eye corner 36 to 45) and y (perpendicular, down) of a face, as rows."""
    ex = points[45] - points[36]
    ex = ex / max(np.linalg.norm(ex), 1e-6)
    return np.array([ex, [-ex[1], ex[0]]])


def _mesh(face: Face, width: int, height: int) -> _Mesh:
    points = face.points.astype(np.float64)
    fw = face.width
    axes = _axes(points)
    forehead = points[[17, 19, 21, 22, 24, 26]] - FOREHEAD * fw * axes[1]
    inner = np.vstack([points, forehead])
    centre = (inner.max(axis=0) + inner.min(axis=0)) / 2
    angles = 2 * np.pi * (np.arange(RING_POINTS) + 0.5) / RING_POINTS
    rings = []
    for scale in RING_SCALES:
        offsets = inner - centre
        local = offsets @ axes.T
        half = np.abs(local).max(axis=0) * np.array(scale)
        ring_local = np.stack([half[0] * np.cos(angles), half[1] * np.sin(angles)], axis=1)
        ring = centre + ring_local @ axes
        rings.append(np.clip(ring, 0, [width - 1, height - 1]))
    rest = np.vstack([inner, *rings])
    weight = np.concatenate([np.ones(len(inner)), np.full(RING_POINTS, 0.5), np.zeros(RING_POINTS)])
    bases = {}
    for name, table in BASIS.items():
        basis = np.zeros_like(rest)
        for i, (dx, dy) in table.items():
            basis[i] = fw * (dx * axes[0] + dy * axes[1])
        bases[name] = basis
    eyelids = np.zeros_like(rest)
    for upper, lower in ((37, 41), (38, 40), (43, 47), (44, 46)):
        eyelids[upper] = 0.95 * (points[lower] - points[upper])
        eyelids[lower] = 0.05 * (points[upper] - points[lower])
    bases["blink"] = eyelids
    lo = np.floor(rest.min(axis=0)).astype(int)
    hi = np.ceil(rest.max(axis=0)).astype(int) + 1
    x0, y0 = max(0, lo[0]), max(0, lo[1])
    x1, y1 = min(width, hi[0] + 1), min(height, hi[1] + 1)
    seam = np.array(
        [points[60], (points[61] + points[67]) / 2, (points[62] + points[66]) / 2,
         (points[63] + points[65]) / 2, points[64]]
    )  # fmt: skip
    return _Mesh(
        rest=rest,
        bases=bases,
        head_weight=weight,
        pivot=points[8] + 0.3 * fw * axes[1],
        axes=axes,
        width=fw,
        roi=(int(x0), int(y0), int(x1), int(y1)),
        seam=seam,
    )


def _triangles(mesh: _Mesh) -> np.ndarray:
    """Delaunay triangles (indices) of the mesh with the mouth open, so that no triangle
    bridges the lips; a function of the face alone, so every chunk gets the same ones."""
    opened = mesh.rest + 0.12 * mesh.bases["open"]
    x0, y0, x1, y1 = mesh.roi
    subdiv = cv2.Subdiv2D((x0 - 2, y0 - 2, x1 - x0 + 4, y1 - y0 + 4))
    for x, y in opened:
        subdiv.insert((float(x), float(y)))
    triangles = []
    for row in subdiv.getTriangleList().reshape(-1, 3, 2):
        distance = np.linalg.norm(opened[None, :, :] - row[:, None, :], axis=2)
        index = distance.argmin(axis=1)
        if distance[np.arange(3), index].max() < 0.01 and len(set(index)) == 3:
            triangles.append(index)
    return np.array(triangles, dtype=np.int64)


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


class ProceduralEngine:
    """Lip-sync by warping the avatar's face; the default engine, needing no model weights.

    Settings (config/schema.yaml, lipsync.procedural, holds each default and range):
      mouth_box        [x, y, width, height] of the lips; places a landmark template there
                       instead of detecting the face
      max_open         gap between the inner lips when fully open, in face widths
      upper_lip        share of the gap made by the upper lip moving up
      lip_shape        strength of rounding, spreading, pressing and labiodental shapes
      source           auto (phoneme/word events blended with the audio's loudness when the
                       job has them, else the audio), events or audio
      audio_share      share of the opening that follows the loudness under `auto`
      attack, release  seconds for the mouth to open and to close
      lead             seconds a mouth shape shows before its sound
      gate_db, full_db audio level in dBFS that keeps the mouth shut / opens it fully
      loudness_curve   exponent on the amplitude between them (below 1 opens quiet sounds more)
      teeth, tongue    opacity of the teeth and of the tongue's hint, 0..1
      interior_color   BGR colour of the inside of the mouth
      blink_rate       random blinks a minute (more come after phrase ends)
      head_motion      scale of the head's drift and nods (0 keeps it still)
      brows            scale of brow lifts on stressed words
      seed             seed of blinks, drift and lifts; null derives it from the job's name
    """

    device = "cpu"

    def __init__(
        self, settings: dict | None = None, *, job: str | None = None, gpu: dict | None = None
    ):
        self.job = job
        settings = engine_settings("lipsync", "procedural", settings, job)
        if float(settings["full_db"]) <= float(settings["gate_db"]):
            raise VestnikError("lipsync full_db must be louder than gate_db", job=job)
        self.settings = settings
        self.mouth_box = settings["mouth_box"]
        self.max_open = float(settings["max_open"])
        self.upper_lip = float(settings["upper_lip"])
        self.source = settings["source"]
        self.timing = {k: float(settings[k]) for k in ("attack", "release", "lead")}
        self.seed = life.job_seed(job, settings["seed"])
        self.interior = np.array(settings["interior_color"], dtype=np.float32)
        self.teeth_color = np.array(TEETH_COLOR, dtype=np.float32)
        self.tongue_color = np.array(TONGUE_COLOR, dtype=np.float32)
        self._meshes: dict[tuple, _Mesh] = {}
        self.setup_seconds = 0.0

    # --- tracks ---------------------------------------------------------------------------

    def visemes(self, chunk: ChunkJob) -> dict[str, np.ndarray]:
        """Viseme channels 0..1 per frame of the chunk, from events or from the audio."""
        timed = has_timings(chunk.events)
        if self.source == "events" and not timed:
            raise VestnikError(
                "lipsync source is 'events' but the speech has no phoneme or word timings",
                job=self.job,
            )
        heard = self._from_audio(chunk)
        if not timed or self.source == "audio":
            return heard
        tracks = visemes_from_events(
            chunk.events, chunk.start_frame, chunk.n_frames, chunk.fps, **self.timing
        )
        if self.source == "auto":
            share = np.float32(self.settings["audio_share"])
            blended = (1 - share) * tracks["open"] + share * heard["open"]
            tracks["open"] = (blended * (1 - np.minimum(tracks["press"], 1))).astype(np.float32)
        return tracks

    def _from_audio(self, chunk: ChunkJob) -> dict[str, np.ndarray]:
        def loudness(timing: dict) -> np.ndarray:
            return openness_from_audio(
                chunk.audio,
                chunk.sample_rate,
                chunk.audio_start,
                chunk.start_frame,
                chunk.n_frames,
                chunk.fps,
                gate_db=float(self.settings["gate_db"]),
                full_db=float(self.settings["full_db"]),
                curve=float(self.settings["loudness_curve"]),
                **timing,
            )

        opened, emphasis = loudness(self.timing), loudness(EMPHASIS_TIMING)
        zero = np.zeros_like(opened)
        return {"open": opened, "emphasis": emphasis, **{name: zero for name in LIP_CHANNELS}}

    def openness(self, chunk: ChunkJob) -> np.ndarray:
        """Mouth openness 0..1 for each frame of the chunk."""
        return self.visemes(chunk)["open"]

    def poses(self, chunk: ChunkJob) -> list[Pose]:
        """The pose of every frame of the chunk: visemes, blinks, brows and head motion."""
        tracks = self.visemes(chunk)
        frames = np.arange(chunk.start_frame, chunk.end_frame, dtype=np.float64)
        times = (frames + 0.5) / chunk.fps
        cues = life.Cues.from_events(chunk.events if self.source != "audio" else None)
        blink = life.blinks(times, self.seed, float(self.settings["blink_rate"]), cues)
        emphasis = tracks.get("emphasis", np.zeros_like(times))
        hx, hy, roll = life.head_motion(
            times, self.seed, float(self.settings["head_motion"]), cues, emphasis
        )
        brow = life.brow_lifts(times, self.seed, float(self.settings["brows"]), cues)
        shape = float(self.settings["lip_shape"])
        return [
            Pose(
                open=float(tracks["open"][k]),
                spread=shape * float(tracks["spread"][k]),
                round=shape * float(tracks["round"][k]),
                press=shape * float(tracks["press"][k]),
                labiodental=shape * float(tracks["labiodental"][k]),
                blink=float(blink[k]),
                brow=float(brow[k]),
                head=(float(hx[k]), float(hy[k]), float(roll[k])),
            )
            for k in range(chunk.n_frames)
        ]

    # --- drawing --------------------------------------------------------------------------

    def _mesh(self, face: Face, width: int, height: int) -> _Mesh:
        key = (face.points.tobytes(), width, height)
        mesh = self._meshes.get(key)
        if mesh is None:
            if len(self._meshes) > 512:
                self._meshes.clear()
            mesh = _mesh(face, width, height)
            mesh.triangles = _triangles(mesh)
            self._meshes[key] = mesh
        return mesh

    def _moved(self, mesh: _Mesh, pose: Pose) -> np.ndarray:
        gap = pose.open * self.max_open
        jaw = gap / (1.0 + self.upper_lip)
        moved = mesh.rest.copy()
        open_basis = mesh.bases["open"]
        lower = open_basis.copy()
        lower[[61, 62, 63, 49, 50, 51, 52, 53]] = 0.0
        upper = open_basis - lower
        moved += jaw * lower + (jaw * self.upper_lip) * upper
        for name in (*LIP_CHANNELS, "brow", "blink"):
            value = getattr(pose, name)
            if value:
                moved += value * mesh.bases[name]
        moved = _close_lips(moved, mesh.rest, pose, gap)
        hx, hy, roll = pose.head
        if hx or hy or roll:
            c, s = math.cos(roll), math.sin(roll)
            rotated = (moved - mesh.pivot) @ np.array([[c, s], [-s, c]]) + mesh.pivot
            shift = mesh.width * (hx * mesh.axes[0] + hy * mesh.axes[1])
            moved += mesh.head_weight[:, None] * (rotated + shift - moved)
        return moved

    def _skull(self, mesh: _Mesh, pose: Pose, points: np.ndarray) -> np.ndarray:
        """Points fixed to the skull, moved with the head."""
        hx, hy, roll = pose.head
        c, s = math.cos(roll), math.sin(roll)
        rotated = (points - mesh.pivot) @ np.array([[c, s], [-s, c]]) + mesh.pivot
        return rotated + mesh.width * (hx * mesh.axes[0] + hy * mesh.axes[1])

    def draw(self, frame: np.ndarray, face: Face | None, pose: Pose) -> np.ndarray:
        """A new frame: `frame` with its `face` moved into `pose`."""
        out = frame.copy()
        if face is None or pose.still():
            return out
        height, width = frame.shape[:2]
        mesh = self._mesh(face, width, height)
        moved = self._moved(mesh, pose)
        x0, y0, x1, y1 = mesh.roi
        map_x, map_y = _warp_maps(mesh.rest, moved, mesh.triangles, mesh.roi)
        warped = cv2.remap(frame, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        out[y0:y1, x0:x1] = warped
        gap = pose.open * self.max_open
        if gap > 0 or pose.labiodental > 0:
            self._paint_mouth(out, mesh, moved, pose)
        return out

    def _paint_mouth(self, out: np.ndarray, mesh: _Mesh, moved: np.ndarray, pose: Pose) -> None:
        lips = moved[60:68]
        fw = mesh.width
        pad = int(math.ceil(0.03 * fw)) + 3
        lo = np.floor(lips.min(axis=0)).astype(int) - pad
        hi = np.ceil(lips.max(axis=0)).astype(int) + pad
        x0, y0 = max(0, lo[0]), max(0, lo[1])
        x1, y1 = min(out.shape[1], hi[0]), min(out.shape[0], hi[1])
        if x1 - x0 < 3 or y1 - y0 < 3:
            return
        size = (y1 - y0, x1 - x0)
        origin = np.array([x0, y0], dtype=np.float64)

        def polygon(points: np.ndarray, value: float = 1.0) -> np.ndarray:
            canvas = np.zeros(size, dtype=np.float32)
            scaled = np.round((points - origin) * 16).astype(np.int32)
            cv2.fillPoly(canvas, [scaled], value, lineType=cv2.LINE_AA, shift=4)
            return canvas

        mask = polygon(lips)
        if mask.max() <= 0:
            return
        gap = float(np.linalg.norm(moved[66] - moved[62]))
        mask = cv2.GaussianBlur(mask, (0, 0), 0.5 + 0.008 * fw)
        depth = cv2.GaussianBlur(mask, (0, 0), max(1.0, 0.3 * gap))
        xs = np.arange(x0, x1, dtype=np.float32)
        centre = float(lips[:, 0].mean())
        half = max(1.0, float(lips[:, 0].max() - lips[:, 0].min()) / 2)
        across = np.clip(np.abs(xs - centre) / half, 0, 1)[None, :]
        recess = 1.0 - 0.55 * across * across
        layer = self.interior * (1.0 - DEPTH_SHADE * depth)[..., None] * recess[..., None]
        tongue_amount = float(self.settings["tongue"]) * float(
            _smoothstep((gap - 0.03 * fw) / (0.05 * fw))
        )
        if tongue_amount > 0:
            tongue_mask = np.zeros(size, dtype=np.float32)
            centre_pt = (moved[66] - origin + [0.0, -0.25 * gap]) * 16
            axes = (0.32 * half * 2 * 16, 0.3 * gap * 16)
            cv2.ellipse(
                tongue_mask,
                (int(round(centre_pt[0])), int(round(centre_pt[1]))),
                (int(round(axes[0])), int(max(16, round(axes[1])))),
                0, 0, 360, 1.0, -1, cv2.LINE_AA, 4,
            )  # fmt: skip
            tongue = self.tongue_color * (1.0 - 0.5 * depth)[..., None] * recess[..., None]
            alpha = (tongue_amount * tongue_mask)[..., None]
            layer = layer + alpha * (tongue - layer)
        teeth = float(self.settings["teeth"])
        if teeth > 0:
            seam = self._skull(mesh, pose, mesh.seam)
            arch = np.array([-0.012, 0.004, 0.008, 0.004, -0.012]) * fw
            upper_edge = seam + (UPPER_TEETH * fw + arch)[:, None] * mesh.axes[1]
            top = upper_edge[::-1] - 0.2 * fw * mesh.axes[1]
            upper = polygon(np.vstack([upper_edge, top]))
            jaw = moved[66] - self._skull(mesh, pose, mesh.rest[66:67])[0]
            lower_edge = (
                seam + LOWER_TEETH_JAW * jaw + (LOWER_TEETH * fw - arch)[:, None] * mesh.axes[1]
            )
            bottom = lower_edge[::-1] + 0.2 * fw * mesh.axes[1]
            lower = polygon(np.vstack([lower_edge, bottom]))
            shade = (1.0 - 0.12 * depth)[..., None] * (0.7 + 0.3 * recess)[..., None]
            enamel = self.teeth_color * shade
            gaps = np.zeros(size, dtype=np.float32)
            for k in (-2, -1, 0, 1, 2):
                x_gap = seam[2] + (k + 0.5 * np.sign(k)) * 0.05 * fw * mesh.axes[0] - origin
                ends = [x_gap - 0.08 * fw * mesh.axes[1], x_gap + UPPER_TEETH * fw * mesh.axes[1]]
                cv2.line(gaps, *(tuple(int(round(v)) for v in end) for end in ends), 1.0, 1)
            incisors = self.teeth_color * shade * (1.0 - 0.12 * gaps)[..., None]
            layer = layer + (0.8 * teeth * lower)[..., None] * (enamel - layer)
            layer = layer + (teeth * upper)[..., None] * (incisors - layer)
        region = out[y0:y1, x0:x1].astype(np.float32)
        blended = region + mask[..., None] * (layer - region)
        out[y0:y1, x0:x1] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)

    # --- engine interface -----------------------------------------------------------------

    def check(self, avatar: Avatar) -> None:
        """Cheap check before heavy work: a configured mouth box fits this avatar."""
        if self.mouth_box is not None:
            check_mouth_box(self.mouth_box, avatar, self.job)

    def faces(self, chunk: ChunkJob) -> list[Face | None]:
        if chunk.faces is not None and self.mouth_box is None:
            return chunk.faces
        model = block_schema("lipsync")["properties"]["landmarks"]["default"]
        return avatar_faces(chunk.avatar, model, mouth_box=self.mouth_box, job=self.job)

    def render(self, chunk: ChunkJob) -> Iterator[np.ndarray]:
        """Yield chunk.n_frames BGR uint8 frames of the avatar's size, one per global frame."""
        started = time.perf_counter()
        faces = self.faces(chunk)
        poses = self.poses(chunk)
        self.setup_seconds = time.perf_counter() - started
        for offset, pose in enumerate(poses):
            index = chunk.start_frame + offset
            yield self.draw(chunk.avatar.frame(index), faces[index % len(faces)], pose)


def _close_lips(moved: np.ndarray, rest: np.ndarray, pose: Pose, gap: float) -> np.ndarray:
    """Pressed lips (м, п, б) meet: the inner lips end on their shared resting line."""
    if pose.press <= 0:
        return moved
    weight = min(1.0, pose.press)
    for upper, lower in ((61, 67), (62, 66), (63, 65)):
        line = (rest[upper] + rest[lower]) / 2
        middle = (moved[upper] + moved[lower]) / 2
        target = line + 0.5 * (middle - line)
        moved[upper] += weight * (target - moved[upper])
        moved[lower] += weight * (target - moved[lower])
    return moved


def _warp_maps(rest: np.ndarray, moved: np.ndarray, triangles: np.ndarray, roi) -> tuple:
    """Backward maps (float32, ROI-sized) of the piecewise-affine warp rest -> moved."""
    x0, y0, x1, y1 = roi
    step = GRID_STEP
    width, height = x1 - x0, y1 - y0
    small_w, small_h = math.ceil(width / step), math.ceil(height / step)
    # coarse sample k sits where cv2.resize puts it: full pixel step * k + (step - 1) / 2
    offset = (step - 1) / 2
    ids = np.full((small_h, small_w), len(triangles), dtype=np.int32)
    local = (moved - [x0 + offset, y0 + offset]) / step
    scaled = np.round(local * 16).astype(np.int32)
    for index, triangle in enumerate(triangles):
        cv2.fillConvexPoly(ids, scaled[triangle], int(index), lineType=cv2.LINE_8, shift=4)
    matrices = _affines(moved[triangles], rest[triangles])
    xs = (x0 + offset + step * np.arange(small_w, dtype=np.float32))[None, :]
    ys = (y0 + offset + step * np.arange(small_h, dtype=np.float32))[:, None]
    rows = matrices.reshape(-1, 6)
    dx = rows[:, 0][ids] * xs + rows[:, 1][ids] * ys + rows[:, 2][ids]
    dy = rows[:, 3][ids] * xs + rows[:, 4][ids] * ys + rows[:, 5][ids]
    dx = cv2.GaussianBlur(dx, (0, 0), SMOOTH_FIELD)
    dy = cv2.GaussianBlur(dy, (0, 0), SMOOTH_FIELD)
    dx = cv2.resize(dx, (small_w * step, small_h * step))[:height, :width]
    dy = cv2.resize(dy, (small_w * step, small_h * step))[:height, :width]
    grid_x, grid_y = _grid(x0, y0, width, height)
    return grid_x + dx, grid_y + dy


@functools.lru_cache(maxsize=64)
def _grid(x0: int, y0: int, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    xs = np.arange(x0, x0 + width, dtype=np.float32)
    ys = np.arange(y0, y0 + height, dtype=np.float32)
    grid_x, grid_y = np.meshgrid(xs, ys)
    grid_x.setflags(write=False)
    grid_y.setflags(write=False)
    return grid_x, grid_y


def _affines(moved: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """(T + 1, 2, 3) float32 matrices giving each triangle's displacement (source minus
    destination) as an affine function of destination pixels; the last one, for pixels
    outside every triangle, is zero. A collapsed triangle moves by its vertices' mean."""
    d0, d1, d2 = moved[:, 0], moved[:, 1], moved[:, 2]
    v = rest - moved
    e1, e2 = d1 - d0, d2 - d0
    det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    flat = np.abs(det) < 1e-9
    inv_det = np.where(flat, 0.0, 1.0 / np.where(flat, 1.0, det))
    dv1, dv2 = v[:, 1] - v[:, 0], v[:, 2] - v[:, 0]
    # L = [dv1 dv2] @ inverse([e1 e2]), the 2x2 inverse written out
    l00 = (dv1[:, 0] * e2[:, 1] - dv2[:, 0] * e1[:, 1]) * inv_det
    l01 = (dv2[:, 0] * e1[:, 0] - dv1[:, 0] * e2[:, 0]) * inv_det
    l10 = (dv1[:, 1] * e2[:, 1] - dv2[:, 1] * e1[:, 1]) * inv_det
    l11 = (dv2[:, 1] * e1[:, 0] - dv1[:, 1] * e2[:, 0]) * inv_det
    base = np.where(flat[:, None], v.mean(axis=1), v[:, 0])
    origin = np.where(flat[:, None], 0.0, d0)
    t0 = base[:, 0] - l00 * origin[:, 0] - l01 * origin[:, 1]
    t1 = base[:, 1] - l10 * origin[:, 0] - l11 * origin[:, 1]
    matrices = np.stack([np.stack([l00, l01, t0], 1), np.stack([l10, l11, t1], 1)], 1)
    return np.concatenate([matrices, np.zeros((1, 2, 3))], axis=0).astype(np.float32)
