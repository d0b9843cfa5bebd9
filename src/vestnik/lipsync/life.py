"""What makes a still portrait look alive: blinks, head motion and brow lifts.

Every motion is a pure function of global time, the speech events and a per-job seed: random
choices come from a counter-based hash of (seed, stream, index) rather than from a generator
carried through the frames, so a chunk renders bitwise the frames one long render would.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np

from vestnik.lipsync.visemes import is_stressed

BLINK_SLOT = 2.0
"""Seconds per slot of the random blink schedule: each slot holds at most one random blink."""
BLINK_SECONDS = (0.1, 0.2)
"""Shortest and longest blink: eyelids close in 40% of it and open in the rest."""
PHRASE_BLINK = 0.6
"""Chance of a blink just after a phrase ends (a pause of PHRASE_PAUSE or more)."""
PHRASE_PAUSE = 0.15
"""Seconds of pause after speech that end a phrase."""
DRIFT_HZ = (0.06, 0.35)
"""Range of the slow drift's frequencies: the head wanders, never jitters."""
DRIFT = 0.006
"""Drift amplitude per axis, in face widths (x, y) at head_motion 1."""
ROLL = 0.01
"""Drift amplitude of the head's roll, in radians (about half a degree) at head_motion 1."""
NOD = 0.008
"""Peak downward nod on a stressed syllable, in face widths, at head_motion 1."""
NOD_SECONDS = 0.45
"""Length of one nod (down and back up)."""
BROW_CHANCE = 0.25
"""Chance that a stressed syllable lifts the brows."""
BROW_SECONDS = 0.7
BROW_RATE = 4.0
"""Random brow lifts per minute when the speech has no phoneme timings."""
_STREAMS = {"blink": 1, "blink_time": 2, "blink_len": 3, "phrase": 4, "drift": 5, "nod": 6,
            "brow": 7, "brow_time": 8}  # fmt: skip


def job_seed(job: str | None, seed: int | None) -> int:
    """The seed of a job's motions: the configured one, else a hash of the job's name."""
    if seed is not None:
        return int(seed) & 0xFFFFFFFF
    return zlib.crc32((job or "").encode("utf-8"))


def uniform(seed: int, stream: str, index: np.ndarray | int) -> np.ndarray:
    """Uniform numbers in [0, 1) for integer indices: splitmix64 of (seed, stream, index)."""
    k = np.asarray(index, dtype=np.int64).astype(np.uint64)
    with np.errstate(over="ignore"):
        z = (
            k * np.uint64(0x9E3779B97F4A7C15)
            + np.uint64((seed << 8) | _STREAMS[stream]) * np.uint64(0xD1B54A32D1B54A33)
        )
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _bump(phase: np.ndarray) -> np.ndarray:
    """Raised cosine over phase 0..1, zero outside."""
    inside = (phase > 0) & (phase < 1)
    return np.where(inside, 0.5 - 0.5 * np.cos(2 * np.pi * np.clip(phase, 0, 1)), 0.0)


def _blink_shape(phase: np.ndarray) -> np.ndarray:
    """Eyelid closure over a blink's phase 0..1: fast close (40%), slower open."""
    closing = np.clip(phase / 0.4, 0, 1)
    opening = np.clip((1 - phase) / 0.6, 0, 1)
    value = np.where(phase < 0.4, closing, opening)
    value = value * value * (3 - 2 * value)
    return np.where((phase > 0) & (phase < 1), value, 0.0)


@dataclass(frozen=True)
class Cues:
    """Global times taken from the speech events: stressed vowels and phrase ends."""

    stresses: np.ndarray
    phrase_ends: np.ndarray
    timed: bool

    @classmethod
    def from_events(cls, events: list[dict] | None) -> Cues:
        phonemes = sorted(
            (float(e["start"]), float(e.get("end") or e["start"]), str(e.get("symbol", "")))
            for e in events or []
            if e.get("type") == "phoneme" and e.get("start") is not None
        )
        stresses = [start for start, _, symbol in phonemes if is_stressed(symbol)]
        ends = []
        speaking = False
        for start, end, symbol in phonemes:
            pause = symbol.strip().startswith("_")
            if pause and speaking and end - start >= PHRASE_PAUSE:
                ends.append(start)
            speaking = not pause
        return cls(np.array(stresses), np.array(ends), bool(phonemes))


def blinks(times: np.ndarray, seed: int, rate: float, cues: Cues) -> np.ndarray:
    """Eyelid closure 0..1 at global `times`: `rate` random blinks a minute, plus one after
    most phrase ends."""
    closure = np.zeros_like(times)
    if rate <= 0:
        return closure
    chance = min(1.0, rate * BLINK_SLOT / 60.0)
    starts, lengths = [], []
    lo = math.floor((times.min() - BLINK_SECONDS[1]) / BLINK_SLOT)
    hi = math.floor(times.max() / BLINK_SLOT)
    slots = np.arange(lo, hi + 1)
    chosen = slots[uniform(seed, "blink", slots) < chance]
    starts.extend((chosen + 0.1 + 0.8 * uniform(seed, "blink_time", chosen)) * BLINK_SLOT)
    lengths.extend(uniform(seed, "blink_len", chosen))
    ends = np.flatnonzero(uniform(seed, "phrase", np.arange(len(cues.phrase_ends))) < PHRASE_BLINK)
    starts.extend(cues.phrase_ends[ends] + 0.05)
    lengths.extend(uniform(seed, "blink_len", -1 - ends))
    for start, share in zip(starts, lengths, strict=True):
        seconds = BLINK_SECONDS[0] + share * (BLINK_SECONDS[1] - BLINK_SECONDS[0])
        closure = np.maximum(closure, _blink_shape((times - start) / seconds))
    return closure


def head_motion(
    times: np.ndarray, seed: int, amount: float, cues: Cues, emphasis: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, y) in face widths and roll in radians at global `times`: slow drift plus nods.

    With phoneme timings each stressed vowel nods; without them (a recording) the head dips
    with `emphasis`, the slowly smoothed mouth openness of the same frames.
    """
    motion = []
    for axis, scale in enumerate((DRIFT, DRIFT, ROLL)):
        u = uniform(seed, "drift", np.arange(9) + 9 * axis)
        value = np.zeros_like(times)
        for j in range(3):
            hz = DRIFT_HZ[0] + (DRIFT_HZ[1] - DRIFT_HZ[0]) * u[3 * j]
            weight = (0.5 + u[3 * j + 1]) / (1 + j)
            value += weight * np.sin(2 * np.pi * (hz * times + u[3 * j + 2]))
        motion.append(amount * scale * value / 1.5)
    if cues.timed:
        strength = 0.5 + 0.5 * uniform(seed, "nod", np.arange(len(cues.stresses)))
        nods = np.zeros_like(times)
        for start, weight in zip(cues.stresses, strength, strict=True):
            nods = np.maximum(nods, weight * _bump((times - start + 0.05) / NOD_SECONDS))
    else:
        nods = np.asarray(emphasis, dtype=np.float64)
    motion[1] = motion[1] + amount * NOD * nods
    return motion[0], motion[1], motion[2]


def brow_lifts(times: np.ndarray, seed: int, amount: float, cues: Cues) -> np.ndarray:
    """Brow lift 0..1 (times `amount`) at global `times`: now and then on a stressed word."""
    lift = np.zeros_like(times)
    if amount <= 0:
        return lift
    if cues.timed:
        picked = cues.stresses[uniform(seed, "brow", np.arange(len(cues.stresses))) < BROW_CHANCE]
    else:
        slot = 60.0 / BROW_RATE
        slots = np.arange(math.floor((times.min() - BROW_SECONDS) / slot), times.max() // slot + 1)
        picked = (slots + uniform(seed, "brow_time", slots)) * slot
    for start in picked:
        lift = np.maximum(lift, _bump((times - start + 0.15) / BROW_SECONDS))
    return amount * lift
