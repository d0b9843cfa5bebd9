"""How alive a rendered talking head is, measured on its frames by an independent fit.

Every output frame gets a fresh dlib face detection and 68-point fit, knowing nothing of the
engine's own landmarks or poses. From those landmarks:
- `opening_range`: inner-lip gap (61-67, 62-66, 63-65) in face widths, 95th minus 5th
  percentile (how far the mouth opens beyond rest);
- `r_envelope`: Pearson r of that gap with the speech's amplitude envelope per frame;
- `round_spread`: mouth width (48-54) on rounded vowels (о, у) over that on spread ones
  (и, е, э), from the speech's phoneme timings;
- `blinks_per_minute`: dips of the eye aspect ratio below 3/4 of its median (open eyes
  read about 0.3, closed ones under 0.22);
- `head_motion`: 95th percentile distance of the nose (27-30) from its median place, in % of
  the face width.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from vestnik.lipsync.visemes import ROUNDED, SPREAD, is_vowel

BLINK_RATIO = 0.75
"""A frame is part of a blink when its eye aspect ratio falls below this share of the median."""


def fit_frames(frames: Iterable[np.ndarray]) -> np.ndarray:
    """68 landmarks per BGR frame (NaN where no face is found), by fresh detection each frame."""
    from vestnik.lipsync.face import dlib_faces

    fits = []
    for frame in frames:
        faces = dlib_faces(frame)
        fits.append(faces[0] if faces else np.full((68, 2), np.nan))
    return np.array(fits)


ENVELOPE_FRAMES = 2
"""Length of the Hann window of the speech envelope, in video frames (80 ms at 25 fps: an
amplitude envelope low-passed near 10 Hz, the band where lip motion and loudness meet)."""


def envelope(samples: np.ndarray, sample_rate: int, fps: float, n_frames: int) -> np.ndarray:
    """Speech envelope per video frame: RMS in a Hann window of ENVELOPE_FRAMES frames
    centred on the frame."""
    samples = np.asarray(samples, dtype=np.float64).reshape(-1)
    half = int(round(ENVELOPE_FRAMES * sample_rate / fps / 2))
    taps = np.hanning(2 * half + 1)
    padded = np.concatenate([np.zeros(half), samples, np.zeros(half + 1)])
    values = []
    for k in range(n_frames):
        centre = int(round((k + 0.5) * sample_rate / fps))
        part = padded[centre : centre + 2 * half + 1]
        if len(part) < len(taps):
            part = np.concatenate([part, np.zeros(len(taps) - len(part))])
        values.append(np.sqrt(np.sum(taps * part * part) / taps.sum()))
    return np.array(values)


def _distance(points: np.ndarray, a: int, b: int) -> np.ndarray:
    return np.linalg.norm(points[:, a] - points[:, b], axis=1)


def _vowel_frames(events: list[dict] | None, fps: float, n_frames: int, kind: str) -> np.ndarray:
    """Frames whose centre lies in the middle half of a stressed-or-not vowel of one kind."""
    chosen = np.zeros(n_frames, dtype=bool)
    centres = (np.arange(n_frames) + 0.5) / fps
    for event in events or []:
        if event.get("type") != "phoneme" or event.get("end") is None:
            continue
        symbol = str(event.get("symbol", ""))
        core = "".join(c for c in symbol if c.isalnum() or c in '@#"')
        if not is_vowel(symbol):
            continue
        base = core[1:] if core[:1] in "jJ" and len(core) > 1 else core
        rounded = core in ROUNDED or base in ROUNDED or base[:1] in "oOuU"
        spread = not rounded and base[:1] in "ieEI" and (core in SPREAD or base[:1] in SPREAD)
        if (kind == "round" and rounded) or (kind == "spread" and spread):
            start, end = float(event["start"]), float(event["end"])
            quarter = (end - start) / 4
            chosen |= (centres >= start + quarter) & (centres <= end - quarter)
    return chosen


def measure(
    points: np.ndarray,
    fps: float,
    speech_envelope: np.ndarray | None = None,
    events: list[dict] | None = None,
) -> dict:
    """Quality figures (see the module's docstring) from per-frame landmarks (N, 68, 2)."""
    found = ~np.isnan(points).any(axis=(1, 2))
    width = _distance(points, 0, 16)
    gap = (_distance(points, 61, 67) + _distance(points, 62, 66) + _distance(points, 63, 65)) / 3
    opening = gap / width
    result: dict = {"frames": int(len(points)), "faces_found": int(found.sum())}
    if found.sum() < 2:
        return result
    result["opening_range"] = float(
        np.percentile(opening[found], 95) - np.percentile(opening[found], 5)
    )
    if speech_envelope is not None:
        use = found & np.isfinite(speech_envelope[: len(points)])
        heard = speech_envelope[: len(points)]
        result["r_envelope"] = float(np.corrcoef(opening[use], heard[use])[0, 1])
    mouth = _distance(points, 48, 54) / width
    rounded = _vowel_frames(events, fps, len(points), "round") & found
    spread = _vowel_frames(events, fps, len(points), "spread") & found
    if rounded.any() and spread.any():
        result["round_spread"] = float(mouth[rounded].mean() / mouth[spread].mean())
    eye = (
        (_distance(points, 37, 41) + _distance(points, 38, 40)) / (2 * _distance(points, 36, 39))
        + (_distance(points, 43, 47) + _distance(points, 44, 46)) / (2 * _distance(points, 42, 45))
    ) / 2
    closed = found & (eye < BLINK_RATIO * np.median(eye[found]))
    onsets = int(np.count_nonzero(closed[1:] & ~closed[:-1]) + int(closed[0]))
    result["blinks_per_minute"] = float(onsets / (len(points) / fps) * 60)
    nose = points[:, 27:31].mean(axis=1)
    offset = np.linalg.norm(nose[found] - np.median(nose[found], axis=0), axis=1)
    result["head_motion"] = float(100 * np.percentile(offset, 95) / np.median(width[found]))
    return result
