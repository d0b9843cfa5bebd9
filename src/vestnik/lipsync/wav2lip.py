"""The `wav2lip` lip-sync engine: the official Wav2Lip generator on a slot of a GPU (or the CPU).

Per frame: the face box (Haar detection + pads) is cropped to 96x96, its lower half masked,
and the network redraws it from the 16-mel-frame window that starts at the frame's time. The
96x96 result is scaled back to the box, colour-matched to the original and blended in with a
feathered mask over the lower face, so no box edge shows.

Chunks render exactly the frames of one long render: mel frames are computed for global times
(see wav2lip_audio), face boxes are a function of the avatar alone, and every batch is padded
to `batch_size` so each frame is computed by the same kernels wherever a chunk starts.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from vestnik.avatar import Avatar
from vestnik.config import engine_settings
from vestnik.errors import VestnikError
from vestnik.lipsync.chunk import ChunkJob
from vestnik.lipsync.face import Box, detect_face

log = logging.getLogger("vestnik")

FACE_SIZE = 96
MASK_CENTRE_Y = 0.72
MASK_AXES = (0.40, 0.24)
"""Feathered ellipse over the mouth and chin, as fractions of the padded face box."""
FEATHER = 0.06
"""Gaussian sigma of the blend mask's edge, as a fraction of the box's shorter side."""
STD_RATIO_LIMITS = (0.5, 2.0)
"""Bounds of the per-channel contrast correction in colour matching."""

_lock = threading.Lock()
_detections: dict[tuple, list[Box | None]] = {}
_models: dict[tuple, object] = {}


class Wav2LipEngine:
    """Lip-sync with an official-format Wav2Lip checkpoint.

    Settings (all optional; defaults and ranges in the schema's `lipsync.wav2lip` block):
      checkpoint    path of wav2lip.pth / wav2lip_gan.pth or a file in the same format
                    (not shipped, see docs/wav2lip.md)
      batch_size    frames per network call; every call is padded to this size
      pads          [top, bottom, left, right] added to the detected face box, as fractions
                    of its height (top, bottom) and width (left, right)
      precision     "auto" (fp16 on CUDA), "fp32", "fp16" or "bf16"; the CPU always runs fp32
      smooth        frames in the moving average of a video avatar's face boxes
      max_face_gap  frames of a video avatar that may lack a detected face; they reuse the
                    last good box; a longer gap fails the job naming the frame

    `gpu` is the top-level `gpu:` config block: the device comes from a slot of it
    (vestnik.slots), and is the CPU when no CUDA device exists.
    """

    def __init__(
        self, settings: dict | None = None, *, job: str | None = None, gpu: dict | None = None
    ):
        self.job = job
        self.gpu = gpu
        self.settings = engine_settings("lipsync", "wav2lip", settings, job)
        self.checkpoint = Path(self.settings["checkpoint"])
        self.batch_size = int(self.settings["batch_size"])
        self.pads = [float(p) for p in self.settings["pads"]]
        self.precision = self.settings["precision"]
        self.device = "cpu"
        self.setup_seconds = 0.0

    def check(self, avatar: Avatar) -> None:
        """Cheap checks before heavy work: the checkpoint exists and every frame has a face."""
        check_checkpoint(self.checkpoint, self.job)
        self.boxes(avatar)

    def boxes(self, avatar: Avatar, faces: list | None = None) -> list[Box]:
        """The padded face box of every avatar frame (one entry for a still image), from the
        avatar's landmark faces when given (those the procedural engine warps)."""
        return face_boxes(
            avatar,
            self.pads,
            smooth=int(self.settings["smooth"]),
            max_gap=int(self.settings["max_face_gap"]),
            job=self.job,
            found=None if faces is None else [None if f is None else f.box for f in faces],
        )

    def render(self, chunk: ChunkJob) -> Iterator[np.ndarray]:
        """The chunk's frames; a device slot is held from model loading to the last frame."""
        from vestnik.lipsync.wav2lip_audio import MEL_STEPS, frame_mels, mel_start
        from vestnik.slots import device_slot

        started = time.perf_counter()
        check_checkpoint(self.checkpoint, self.job)
        boxes = self.boxes(chunk.avatar, chunk.faces)
        offset = round(chunk.audio_start * chunk.sample_rate)
        self._check_context(chunk, offset)
        mel, m0 = frame_mels(
            chunk.audio, chunk.sample_rate, offset, chunk.start_frame, chunk.n_frames, chunk.fps
        )
        with device_slot(self.gpu, job=self.job) as device:
            self.device = device
            network = _Network(self.checkpoint, device, self.precision, self.batch_size, self.job)
            self.setup_seconds = time.perf_counter() - started
            for first in range(chunk.start_frame, chunk.end_frame, self.batch_size):
                frames = range(first, min(first + self.batch_size, chunk.end_frame))
                windows = []
                crops = []
                for k in frames:
                    m = mel_start(k, chunk.fps) - m0
                    windows.append(mel[:, m : m + MEL_STEPS])
                    box = boxes[k % len(boxes)]
                    crops.append(crop_face(chunk.avatar.frame(k), box))
                faces = network(np.stack(windows), np.stack(crops))
                for k, face in zip(frames, faces, strict=True):
                    yield paste_face(chunk.avatar.frame(k), boxes[k % len(boxes)], face)

    def _check_context(self, chunk: ChunkJob, offset: int) -> None:
        from vestnik.lipsync.wav2lip_audio import needed_input

        lo, _ = needed_input(chunk.sample_rate, chunk.start_frame, chunk.n_frames, chunk.fps)
        if offset > 0 and lo < offset:
            log.warning(
                "job %s: chunk audio starts %.3f s after its first frame's mel window; frames at "
                "the chunk edge may differ from a single render (raise chunks.context)",
                self.job,
                (offset - lo) / chunk.sample_rate,
            )


def check_checkpoint(path: str | os.PathLike, job: str | None) -> None:
    """A missing checkpoint names the job, the file and where the weights come from."""
    if not Path(path).is_file():
        raise VestnikError(
            "Wav2Lip checkpoint not found; download wav2lip_gan.pth (or wav2lip.pth) from the "
            "official Rudrabha/Wav2Lip repository (research use only, see docs/wav2lip.md) and "
            "set lipsync.wav2lip.checkpoint",
            job=job,
            path=path,
        )


def _detect_all(avatar: Avatar) -> list[Box | None]:
    key = (str(avatar.path.resolve()), avatar.mtime_ns, avatar.width, avatar.height)
    with _lock:
        found = _detections.get(key)
    if found is None:
        found = [detect_face(frame) for frame in avatar.frames]
        with _lock:
            _detections[key] = found
    return list(found)


def fill_gaps(found: list[Box | None], max_gap: int, path: object, job: str | None) -> list[Box]:
    """Frames without a face take the last good box (leading ones the first good box).

    A run of more than `max_gap` faceless frames is a VestnikError naming its first frame.
    """
    good = [box for box in found if box is not None]
    if not good:
        raise VestnikError(
            "no face found in the avatar (OpenCV frontal-face detector)", job=job, path=path
        )
    start = 0
    while start < len(found):
        if found[start] is not None:
            start += 1
            continue
        end = start
        while end < len(found) and found[end] is None:
            end += 1
        if end - start > max_gap:
            raise VestnikError(
                f"no face in avatar frame {start} (frames {start}..{end - 1} have none: "
                f"{end - start} frames, more than wav2lip.max_face_gap={max_gap})",
                job=job,
                path=path,
            )
        start = end
    filled: list[Box] = []
    last = good[0]
    for box in found:
        if box is not None:
            last = box
        filled.append(last)
    return filled


def smooth_boxes(boxes: list[Box], window: int) -> list[Box]:
    """Centred moving average of boxes over `window` frames (1 leaves them as they are)."""
    if window <= 1 or len(boxes) == 1:
        return list(boxes)
    half = window // 2
    values = np.array(boxes, dtype=np.float64)
    smoothed = []
    for i in range(len(boxes)):
        mean = values[max(0, i - half) : i + half + 1].mean(axis=0)
        smoothed.append(tuple(int(round(v)) for v in mean))
    return smoothed


def pad_box(face: Box, pads: list[float], width: int, height: int) -> Box:
    """Face box grown by fractional pads [top, bottom, left, right], clipped to the frame."""
    x, y, w, h = face
    top, bottom, left, right = pads
    x1 = max(0, int(round(x - left * w)))
    y1 = max(0, int(round(y - top * h)))
    x2 = min(width, int(round(x + w + right * w)))
    y2 = min(height, int(round(y + h + bottom * h)))
    return x1, y1, max(2, x2 - x1), max(2, y2 - y1)


def face_boxes(
    avatar: Avatar,
    pads: list[float],
    *,
    smooth: int,
    max_gap: int,
    job: str | None = None,
    found: list[Box | None] | None = None,
) -> list[Box]:
    """Padded face box per avatar frame: `found` boxes, else detected once per avatar file
    version (in-process cache); a video's boxes get gaps filled (bounded by `max_gap`) and
    are smoothed."""
    if found is None:
        found = _detect_all(avatar)
    boxes = fill_gaps(found, max_gap, avatar.path, job)
    if avatar.is_video:
        boxes = smooth_boxes(boxes, smooth)
    return [pad_box(box, pads, avatar.width, avatar.height) for box in boxes]


def crop_face(frame: np.ndarray, box: Box) -> np.ndarray:
    """The box's pixels scaled to 96x96 (BGR uint8), as the official inference crops them."""
    x, y, w, h = box
    return cv2.resize(frame[y : y + h, x : x + w], (FACE_SIZE, FACE_SIZE))


@functools.cache
def blend_mask(width: int, height: int) -> np.ndarray:
    """Feathered ellipse over the lower face, exactly zero on the box's border (float32 HxWx1)."""
    mask = np.zeros((height, width), dtype=np.float32)
    centre = (int(round(width / 2)), int(round(MASK_CENTRE_Y * height)))
    axes = (max(1, int(round(MASK_AXES[0] * width))), max(1, int(round(MASK_AXES[1] * height))))
    cv2.ellipse(mask, centre, axes, 0, 0, 360, 1.0, thickness=-1)
    sigma = max(0.5, FEATHER * min(width, height))
    mask = cv2.GaussianBlur(mask, (0, 0), sigma)
    ramp_x = np.clip(np.minimum(np.arange(width), width - 1 - np.arange(width)) / sigma, 0, 1)
    ramp_y = np.clip(np.minimum(np.arange(height), height - 1 - np.arange(height)) / sigma, 0, 1)
    mask *= ramp_y[:, None] * ramp_x[None, :]
    return mask[:, :, None]


def match_colours(generated: np.ndarray, original: np.ndarray) -> np.ndarray:
    """Shift and scale each channel of `generated` so that its upper half, which the network
    redraws from the unmasked reference, has the original's mean and spread there."""
    top = max(1, generated.shape[0] // 2)
    gen_mean = generated[:top].mean(axis=(0, 1))
    gen_std = generated[:top].std(axis=(0, 1))
    orig_mean = original[:top].mean(axis=(0, 1))
    orig_std = original[:top].std(axis=(0, 1))
    ratio = np.clip(orig_std / np.maximum(gen_std, 1e-3), *STD_RATIO_LIMITS)
    return (generated - gen_mean) * ratio + orig_mean


def paste_face(frame: np.ndarray, box: Box, face: np.ndarray) -> np.ndarray:
    """A copy of `frame` with the generated 96x96 face (float BGR, 0..255) blended into `box`."""
    x, y, w, h = box
    out = frame.copy()
    original = frame[y : y + h, x : x + w].astype(np.float32)
    generated = cv2.resize(face.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    generated = match_colours(generated, original)
    mask = blend_mask(w, h)
    blended = original + (generated - original) * mask
    out[y : y + h, x : x + w] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    return out


class _Network:
    """A loaded model on one device: numpy (B, 80, 16) mels + (B, 96, 96, 3) faces in,
    (B, 96, 96, 3) float faces (0..255) out, every call padded to the batch size."""

    def __init__(
        self, checkpoint: Path, device: str, precision: str, batch_size: int, job: str | None
    ):
        import torch

        from vestnik.lipsync.wav2lip_model import InferenceWav2Lip, load_wav2lip

        self.torch = torch
        self.device = torch.device(device)
        self.batch_size = batch_size
        resolved = checkpoint.resolve()
        key = (str(resolved), resolved.stat().st_mtime_ns, device)
        with _lock:
            model = _models.get(key)
        if model is None:
            model = InferenceWav2Lip(load_wav2lip(checkpoint, job=job)).to(self.device).eval()
            with _lock:
                _models[key] = model
        self.model = model
        self.dtype = None
        if self.device.type == "cuda":
            self.dtype = torch.bfloat16 if precision == "bf16" else None
            if precision in ("auto", "fp16"):
                self.dtype = torch.float16
        elif precision in ("fp16", "bf16"):
            log.info("wav2lip.precision %s applies on CUDA only; the CPU runs fp32", precision)

    def __call__(self, mels: np.ndarray, crops: np.ndarray) -> np.ndarray:
        torch = self.torch
        count = len(crops)
        if count < self.batch_size:
            extra = self.batch_size - count
            mels = np.concatenate([mels, np.repeat(mels[-1:], extra, axis=0)])
            crops = np.concatenate([crops, np.repeat(crops[-1:], extra, axis=0)])
        masked = crops.copy()
        masked[:, FACE_SIZE // 2 :] = 0
        faces = np.concatenate([masked, crops], axis=3).transpose(0, 3, 1, 2)
        with torch.inference_mode():
            face_t = torch.from_numpy(np.ascontiguousarray(faces)).to(self.device)
            face_t = face_t.float() / 255.0
            mel_t = torch.from_numpy(np.ascontiguousarray(mels[:, None])).to(self.device)
            if self.dtype is not None:
                with torch.autocast(self.device.type, dtype=self.dtype):
                    out = self.model(mel_t, face_t)
            else:
                out = self.model(mel_t, face_t)
            out = out[:count].float().mul(255.0).permute(0, 2, 3, 1).cpu().numpy()
        return out

