"""The `procedural` lip-sync engine: a mouth animated by warping the avatar, no weights needed.

Each frame warps a region around the lower face with cv2.remap. Below the lip line the lower
lip, chin and jaw move down; above it the upper lip moves up a little; inside the mouth's
outline the two sides tear apart, and the gap is filled with a feathered dark interior and a
hint of upper teeth. Outside the mouth the displacement is continuous and fades to zero at the
region's edge, so there are no seams. Everything that does not depend on openness is computed
once per mouth box.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from vestnik.avatar import Avatar
from vestnik.config import engine_settings
from vestnik.errors import VestnikError
from vestnik.lipsync.chunk import ChunkJob
from vestnik.lipsync.face import Box, find_mouth_box
from vestnik.lipsync.visemes import (
    has_timings,
    openness_from_audio,
    openness_from_events,
)

JAW_HALF_WIDTH = 1.25
"""Half-width (in mouth widths) over which the jaw's pull fades out sideways."""
UPPER_REACH = 1.1
"""How far above the lip line (in mouth heights) the upper lip's motion fades out."""
JAW_RIGID = 1.5
"""Depth below the lip line (in mouth heights) that moves rigidly with the jaw: lip and chin."""
JAW_REACH = 3.2
"""Depth below the lip line (in mouth heights) at which the jaw's pull has faded into the neck."""
MOUTH_HALF_WIDTH = 0.45
"""Half-width of the opening, in mouth widths: the lips stay joined at the corners."""
TEAR_POWER = 0.8
"""Shape of the opening across the mouth: 0.5 an ellipse, 1 a parabola (pointed corners)."""
CORNER_DROP = 0.35
"""Share of the jaw's drop that reaches the mouth corners and cheeks beside them."""
LIP_TO_CHIN = 0.8
"""Depth (in mouth heights) over which the lower lip's curved drop becomes the jaw's rigid one."""
TEETH_SHARE = 0.3
"""Share of the opening's height, from its top, that the upper-teeth hint covers."""
TEETH_MIN_GAP = 3.0
"""Pixels the lips must part before teeth show (fully from 4 pixels more)."""
TEETH_COLOR = (200, 212, 222)
DEPTH_SHADE = 0.55
"""How much darker the middle of the opening is than its edges (the throat is in shadow)."""


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


@dataclass(frozen=True)
class _Geometry:
    """Openness-independent warp fields for one mouth box, over its region of interest."""

    x0: int
    y0: int
    x1: int
    y1: int
    seam: float
    map_x: np.ndarray
    grid_y: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    feather: float


def _geometry(box: Box, width: int, height: int, upper_lip: float) -> _Geometry:
    mx, my, mw, mh = box
    cx, seam = mx + mw / 2.0, my + mh / 2.0
    x0 = max(0, math.floor(cx - JAW_HALF_WIDTH * mw) - 1)
    x1 = min(width, math.ceil(cx + JAW_HALF_WIDTH * mw) + 2)
    y0 = max(0, math.floor(seam - UPPER_REACH * mh) - 1)
    y1 = min(height, math.ceil(seam + JAW_REACH * mh) + 2)
    xs = np.arange(x0, x1, dtype=np.float64)
    ys = np.arange(y0, y1, dtype=np.float64)[:, None]
    across = np.abs(xs - cx)
    jaw = 1.0 - _smoothstep((across - 0.5 * mw) / ((JAW_HALF_WIDTH - 0.5) * mw))
    tear = np.clip(1.0 - (across / (MOUTH_HALF_WIDTH * mw)) ** 2, 0.0, 1.0) ** TEAR_POWER
    below = 1.0 - _smoothstep((ys - seam - JAW_RIGID * mh) / ((JAW_REACH - JAW_RIGID) * mh))
    above = 1.0 - _smoothstep((seam - ys) / (UPPER_REACH * mh))
    corner = CORNER_DROP * jaw
    lip_lower = corner + tear * (1.0 - corner)
    near = np.where(ys >= seam, below, above)
    to_chin = np.where(ys >= seam, _smoothstep((ys - seam) / (LIP_TO_CHIN * mh)) * below, 0.0)
    lower = lip_lower * near + (jaw - lip_lower) * to_chin
    upper = lower - tear * (1.0 + upper_lip) * near
    grid_y = np.broadcast_to(ys, (y1 - y0, x1 - x0))
    return _Geometry(
        x0=x0,
        y0=y0,
        x1=x1,
        y1=y1,
        seam=seam,
        map_x=np.ascontiguousarray(np.broadcast_to(xs, grid_y.shape), dtype=np.float32),
        grid_y=np.ascontiguousarray(grid_y, dtype=np.float32),
        lower=np.ascontiguousarray(lower, dtype=np.float32),
        upper=np.ascontiguousarray(upper, dtype=np.float32),
        feather=max(1.0, 0.08 * mh),
    )


class ProceduralEngine:
    """Lip-sync by warping the avatar's mouth; the default engine, needing no model weights.

    Settings (all optional; defaults and ranges in the schema's `lipsync.procedural` block):
      mouth_box       [x, y, width, height] of the mouth in avatar pixels; null: detected
      max_open        gap between the lips when fully open, in mouth-box heights
      upper_lip       share of the opening made by the upper lip moving up; the jaw makes
                      the rest
      source          "auto" (phoneme/word events when the job has them, else audio),
                      "events" or "audio"
      attack          seconds for the mouth to open
      release         seconds for the mouth to close
      lead            seconds a mouth shape shows before its sound (at most MAX_LEAD)
      gate_db         audio level in dBFS at and below which the mouth stays shut
      full_db         audio level in dBFS that opens the mouth fully (louder than gate_db)
      teeth           opacity of the upper-teeth hint inside the mouth, 0..1
      interior_color  BGR colour of the inside of the mouth
    """

    device = "cpu"

    def __init__(
        self, settings: dict | None = None, *, job: str | None = None, gpu: dict | None = None
    ):
        self.job = job
        merged = engine_settings("lipsync", "procedural", settings, job)
        self.mouth_box = merged["mouth_box"]
        self.max_open = float(merged["max_open"])
        self.upper_lip = float(merged["upper_lip"])
        self.attack = float(merged["attack"])
        self.release = float(merged["release"])
        self.lead = float(merged["lead"])
        self.gate_db = float(merged["gate_db"])
        self.full_db = float(merged["full_db"])
        self.teeth = float(merged["teeth"])
        if self.full_db <= self.gate_db:
            raise VestnikError("lipsync full_db must be louder than gate_db", job=job)
        self.source = merged["source"]
        self.interior = np.array(merged["interior_color"], dtype=np.float32)
        self.teeth_color = np.array(TEETH_COLOR, dtype=np.float32)
        self._geometries: dict[tuple, _Geometry] = {}
        self.setup_seconds = 0.0

    def openness(self, chunk: ChunkJob) -> np.ndarray:
        """Mouth openness 0..1 for each frame of the chunk, from events or from the audio."""
        timed = has_timings(chunk.events)
        if self.source == "events" and not timed:
            raise VestnikError(
                "lipsync source is 'events' but the speech has no phoneme or word timings",
                job=self.job,
            )
        timing = {"attack": self.attack, "release": self.release, "lead": self.lead}
        if timed and self.source != "audio":
            return openness_from_events(
                chunk.events, chunk.start_frame, chunk.n_frames, chunk.fps, **timing
            )
        return openness_from_audio(
            chunk.audio,
            chunk.sample_rate,
            chunk.audio_start,
            chunk.start_frame,
            chunk.n_frames,
            chunk.fps,
            gate_db=self.gate_db,
            full_db=self.full_db,
            **timing,
        )

    def _geometry(self, box: Box, width: int, height: int) -> _Geometry:
        key = (box, width, height)
        geometry = self._geometries.get(key)
        if geometry is None:
            if len(self._geometries) > 256:
                self._geometries.clear()
            geometry = _geometry(box, width, height, self.upper_lip)
            self._geometries[key] = geometry
        return geometry

    def draw(self, frame: np.ndarray, box: Box | None, openness: float) -> np.ndarray:
        """A new frame: `frame` with the mouth in `box` opened by `openness` (0..1)."""
        out = frame.copy()
        if box is None or openness <= 0.0:
            return out
        g = self._geometry(box, frame.shape[1], frame.shape[0])
        jaw = np.float32(openness * self.max_open * box[3] / (1.0 + self.upper_lip))
        src_upper = g.grid_y - jaw * g.upper
        src_lower = g.grid_y - jaw * g.lower
        seam = np.float32(g.seam)
        map_y = np.where(src_upper < seam, src_upper, np.maximum(src_lower, seam))
        warped = cv2.remap(
            frame, g.map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        ).astype(np.float32)
        depth_below_top = src_upper - seam
        inside = np.minimum(depth_below_top, seam - src_lower)
        mouth = np.clip(inside * np.float32(1.0 / g.feather), 0.0, 1.0)[..., None]
        height = depth_below_top + (seam - src_lower)
        teeth = np.clip(
            (np.float32(TEETH_SHARE) * height - depth_below_top) * np.float32(1.0 / g.feather), 0, 1
        )
        teeth *= np.clip((height - np.float32(TEETH_MIN_GAP)) * np.float32(0.25), 0, 1)
        teeth = (np.float32(self.teeth) * teeth)[..., None]
        shade = 1.0 - np.float32(DEPTH_SHADE) * np.clip(
            inside * np.float32(1.0 / (3 * g.feather)), 0, 1
        )
        fill = self.interior * shade[..., None]
        fill = fill + teeth * (self.teeth_color - fill)
        blended = warped + mouth * (fill - warped)
        out[g.y0 : g.y1, g.x0 : g.x1] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
        return out

    def check(self, avatar: Avatar) -> None:
        """Cheap check before heavy work: the mouth can be placed on this avatar."""
        find_mouth_box(avatar, self.mouth_box, job=self.job)

    def render(self, chunk: ChunkJob) -> Iterator[np.ndarray]:
        """Yield chunk.n_frames BGR uint8 frames of the avatar's size, one per global frame."""
        started = time.perf_counter()
        boxes = find_mouth_box(chunk.avatar, self.mouth_box, job=self.job)
        openness = self.openness(chunk)
        self.setup_seconds = time.perf_counter() - started
        for offset in range(chunk.n_frames):
            index = chunk.start_frame + offset
            yield self.draw(
                chunk.avatar.frame(index), boxes[index % len(boxes)], float(openness[offset])
            )
