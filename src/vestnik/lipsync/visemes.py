"""Mouth shapes per video frame, from phoneme timings or from the audio.

A frame's mouth is a few viseme channels, each 0..1: `open` (jaw and lips apart), `spread`
(и, ы, е, э: corners out), `round` (о, у, ё, ю: corners in, lips forward), `press` (м, п, б:
lips pressed together) and `labiodental` (ф, в: lower lip to the upper teeth). Coarticulation:
each channel is smoothed with its own attack and release, and lip rounding or spreading starts
on the consonants before its vowel (anticipation), as speakers do.

Every value is a function of global times only, and the attack/release smoother restarts from
a closed mouth a fixed number of frames before each frame instead of carrying state through
the chunk, so a frame gets bitwise the same openness in any chunk that contains it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

SUBSAMPLES = 8
"""Points per frame at which the phoneme track is sampled; their mean is the frame's target."""
CLOSED_BELOW = 0.01
"""Openness under this is exactly 0, so frames in silence are the untouched avatar."""
MAX_PHONEME = 0.35
"""Longest a phoneme without an end time is held (seconds) before the mouth rests."""
SYLLABLE_RATE = 5.0
"""Syllables per second assumed for a word event whose text has no vowel letters."""
WORD_OPEN = 0.75
"""Peak openness of a syllable when only word timings are known."""
SMOOTHING_MEMORY = 0.3
"""Seconds of history the attack/release smoother restarts from (a closed mouth) per frame."""
ENVELOPE_WINDOW = 0.06
"""Seconds of audio in the Hann window whose RMS is a frame's level."""
MAX_LEAD = 0.1
"""Largest |lead| accepted, in seconds."""
CONTEXT_SECONDS = SMOOTHING_MEMORY + ENVELOPE_WINDOW / 2 + MAX_LEAD
"""Audio a chunk needs beyond its frames on each side for its openness to match a whole run."""
VOWEL_LETTERS = frozenset("аеёиоуыэюяaeiouy")

VOWEL_OPEN = {
    # eSpeak NG Russian mnemonics
    "A": 1.0, "a": 0.9, "ja": 0.9, "a#": 0.7, "V": 0.7,
    "E": 0.8, "e": 0.65, "je": 0.65,
    "O": 0.8, "o": 0.75, "jo": 0.7, "8": 0.65,
    "@": 0.5, "@-": 0.3,
    "y": 0.4, "i": 0.35, "I": 0.35, "I#": 0.35, "ji": 0.35,
    "u": 0.4, "u#": 0.4, 'u"': 0.4, "ju": 0.45, "U": 0.4,
    # the same vowels as IPA, for voices or versions that report IPA phoneme names
    "ɑ": 1.0, "æ": 0.9, "ʌ": 0.7, "ɛ": 0.8, "ɔ": 0.8, "ɵ": 0.65, "ə": 0.5,
    "ɨ": 0.4, "ɪ": 0.35, "ʊ": 0.4, "ʉ": 0.4,
}  # fmt: skip
"""Peak openness of each vowel (1 = the widest stressed [a])."""
BILABIAL = frozenset("mpb")
LABIODENTAL = frozenset("fv")
SIBILANT = frozenset("SZʃʒɕʑ")
CONSONANT_OPEN = 0.22
SIBILANT_OPEN = 0.26
LABIODENTAL_OPEN = 0.1
STRESS_MARKS = "'ˈ,ˌ%="
DROP_MARKS = ";ʲ:ː"
STRESS_FACTOR = {"'": 1.0, "ˈ": 1.0, ",": 0.95, "ˌ": 0.95}
UNSTRESSED_FACTOR = 0.88


def phoneme_openness(name: str) -> float | None:
    """Target openness of one eSpeak NG phoneme mnemonic (or IPA symbol); None for a mark.

    Vowels open by their height (stressed ones a little more), m p b close the lips, f v nearly
    close them, other consonants leave the mouth slightly open, pauses ('_') close it.
    """
    name = name.strip()
    stress = next((STRESS_FACTOR[c] for c in name if c in STRESS_FACTOR), None)
    core = "".join(c for c in name if c not in STRESS_MARKS and c not in DROP_MARKS)
    if not core:
        return None
    if core.startswith("_"):
        return 0.0
    vowel = VOWEL_OPEN.get(core)
    if vowel is None and len(core) > 1 and core[0] not in "jJ":
        vowel = VOWEL_OPEN.get(core[0]) if core[0] in "aAeEoOiIuUyV@8" else None
    if vowel is not None:
        return vowel * (stress if stress is not None else UNSTRESSED_FACTOR)
    first = core[0]
    if first in BILABIAL:
        return 0.0
    if first in LABIODENTAL:
        return LABIODENTAL_OPEN
    if first in SIBILANT or core.startswith(("tS", "tʃ")):
        return SIBILANT_OPEN
    return CONSONANT_OPEN


ROUNDED = frozenset({"o", "O", "u", "U", "u#", 'u"', "ju", "jo", "8", "ɔ", "ʊ", "ʉ", "ɵ"})
SPREAD = {"i": 1.0, "I": 0.9, "I#": 0.9, "ji": 1.0, "y": 0.6, "e": 0.8, "je": 0.8, "E": 0.7,
          "ɪ": 0.9, "ɨ": 0.6, "ɛ": 0.7, "æ": 0.4}  # fmt: skip
"""How far each front vowel spreads the lip corners (и the most)."""
CHANNELS = ("open", "spread", "round", "press", "labiodental")
ANTICIPATION = 0.25
"""Seconds before a vowel over which its rounding or spreading reaches back onto consonants."""
CARRY = 0.7
"""Share of a vowel's rounding or spreading that the consonants before it take on."""
SHAPE_TIMING = {"attack": 0.06, "release": 0.08}
"""Lip rounding and spreading move more slowly than the jaw."""
PRESS_TIMING = {"attack": 0.02, "release": 0.02}
"""Lips press and part quickly: a bilabial is short."""


def _core(name: str) -> str:
    return "".join(c for c in name.strip() if c not in STRESS_MARKS and c not in DROP_MARKS)


def _lip_shape(core: str) -> tuple[float, float, float, float]:
    """(spread, round, press, labiodental) targets of one phoneme's core symbol."""
    if not core or core.startswith("_"):
        return 0.0, 0.0, 0.0, 0.0
    base = core[1:] if core[0] in "jJ" and len(core) > 1 else core
    rounded = 1.0 if core in ROUNDED or base in ROUNDED or base[:1] in "oOuU" else 0.0
    spread = SPREAD.get(core, SPREAD.get(base, SPREAD.get(base[:1], 0.0))) if not rounded else 0.0
    if VOWEL_OPEN.get(core) is None and VOWEL_OPEN.get(base[:1]) is None:
        spread = rounded = 0.0
    press = 1.0 if core[0] in BILABIAL else 0.0
    labiodental = 1.0 if core[0] in LABIODENTAL else 0.0
    return spread, rounded, press, labiodental


def is_vowel(name: str) -> bool:
    """Whether an eSpeak NG phoneme (or IPA symbol) is a vowel."""
    core = _core(name)
    return bool(core) and (
        VOWEL_OPEN.get(core) is not None
        or (len(core) > 1 and core[0] in "aAeEoOiIuUyV@8" and VOWEL_OPEN.get(core[0]) is not None)
        or (core[0] in "jJ" and VOWEL_OPEN.get(core) is not None)
    )


def is_stressed(name: str) -> bool:
    """A vowel carrying primary stress ("'" or "ˈ")."""
    return is_vowel(name) and any(c in "'ˈ" for c in name)


def _kind(event: dict) -> str:
    return str(event.get("type", ""))


def has_timings(events: Iterable[dict] | None) -> bool:
    """Whether speech events include phoneme or word timings to animate from."""
    return any(_kind(event) in ("phoneme", "word") for event in events or [])


def _start(event: dict) -> float | None:
    value = event.get("start")
    return None if value is None else float(value)


def _end(event: dict, start: float) -> float | None:
    return None if event.get("end") is None else float(event["end"])


def _segments(events: Iterable[dict], kind: str, value_of) -> list[tuple[float, float, float]]:
    """(start, end, value) for events of one kind; a missing end is the next event's start."""
    rows = []
    for event in events:
        if _kind(event) != kind:
            continue
        start = _start(event)
        value = value_of(event)
        if start is None or value is None:
            continue
        rows.append((start, _end(event, start), value))
    rows.sort(key=lambda row: row[0])
    segments = []
    for i, (start, end, value) in enumerate(rows):
        if end is None:
            following = rows[i + 1][0] if i + 1 < len(rows) else start + MAX_PHONEME
            end = min(following, start + MAX_PHONEME)
        if end > start:
            segments.append((start, end, value))
    return segments


def _phoneme_value(event: dict) -> float | None:
    name = event.get("symbol")
    return None if name is None else phoneme_openness(str(name))


def _syllables(event: dict) -> float:
    text = str(event.get("text", "")).lower()
    count = sum(1 for c in text if c in VOWEL_LETTERS)
    if count:
        return float(count)
    start = _start(event) or 0.0
    end = _end(event, start) or start
    return float(max(1, round((end - start) * SYLLABLE_RATE)))


def _sample_times(first: int, count: int, fps: float, lead: float) -> np.ndarray:
    frames = np.arange(first, first + count, dtype=np.float64)[:, None]
    offsets = (np.arange(SUBSAMPLES, dtype=np.float64) + 0.5) / SUBSAMPLES
    return (frames + offsets) / fps + lead


def _track_values(times: np.ndarray, segments: list[tuple[float, float, float]], words: bool):
    """Piecewise track at `times`: a phoneme's value, or syllable humps inside a word."""
    if not segments:
        return np.zeros_like(times)
    starts = np.array([s[0] for s in segments])
    ends = np.array([s[1] for s in segments])
    values = np.array([s[2] for s in segments])
    index = np.searchsorted(starts, times, side="right") - 1
    safe = np.clip(index, 0, None)
    inside = (index >= 0) & (times < ends[safe])
    if not words:
        return np.where(inside, values[safe], 0.0)
    phase = (times - starts[safe]) / np.maximum(ends[safe] - starts[safe], 1e-6) * values[safe]
    return np.where(inside, WORD_OPEN * np.abs(np.sin(np.pi * phase)), 0.0)


def _coefficient(seconds: float, fps: float) -> float:
    """One-pole smoothing step per frame for a time constant; 0 s means follow instantly."""
    return 1.0 if seconds <= 0 else 1.0 - math.exp(-1.0 / (seconds * fps))


def _warmup(fps: float) -> int:
    """Frames of history the smoother sees: SMOOTHING_MEMORY seconds, whatever its settings."""
    return math.ceil(SMOOTHING_MEMORY * fps - 1e-9)


def _attack_release(raw: np.ndarray, warm: int, attack: float, release: float, fps: float):
    """Smooth with fast opening and slower closing; each output sees only `warm` frames back.

    Restarting from a closed mouth for every frame, rather than carrying state from the chunk's
    start, is what makes a frame's value independent of where its chunk begins.
    """
    up, down = _coefficient(attack, fps), _coefficient(release, fps)
    windows = np.lib.stride_tricks.sliding_window_view(raw, warm + 1)
    state = np.zeros(windows.shape[0])
    for column in range(warm + 1):
        target = windows[:, column]
        state = state + np.where(target > state, up, down) * (target - state)
    state = np.clip(state, 0.0, 1.0)
    state[state < CLOSED_BELOW] = 0.0
    return state.astype(np.float32)


def _phonemes(events: Iterable[dict]) -> list[tuple[float, float, str]]:
    """(start, end, symbol) of the phoneme events, with ends filled as `_segments` does."""
    return [
        (start, end, symbol)
        for start, end, symbol in _segments(
            events, "phoneme", lambda e: None if e.get("symbol") is None else str(e["symbol"])
        )
    ]


def _anticipated(phonemes: list[tuple[float, float, str]], channel: int):
    """Segments of one lip-shape channel where consonants take on the next vowel's shape."""
    segments = []
    for i, (start, end, symbol) in enumerate(phonemes):
        value = _lip_shape(_core(symbol))[channel]
        if not is_vowel(symbol) and not _core(symbol).startswith("_"):
            for later_start, _, later in phonemes[i + 1 :]:
                if later_start - end > ANTICIPATION or _core(later).startswith("_"):
                    break
                if is_vowel(later):
                    value = max(value, CARRY * _lip_shape(_core(later))[channel])
                    break
        segments.append((start, end, value))
    return segments


def _or_default(**values: float | None) -> tuple[float, ...]:
    """`values` in order, each unset one replaced by the procedural engine's schema default
    (the schema is read only then: a chunk render, given every value, skips its parse)."""
    if all(value is not None for value in values.values()):
        return tuple(float(value) for value in values.values())
    from vestnik.config import block_schema

    schema = block_schema("lipsync.procedural")["properties"]
    return tuple(
        float(schema[key]["default"] if value is None else value) for key, value in values.items()
    )


def visemes_from_events(
    events: list[dict] | None, start_frame: int, n_frames: int, fps: float, **timing: float
) -> dict[str, np.ndarray]:
    """Every viseme channel (float32, 0..1) for global frames [start_frame, +n_frames).

    `open` is `openness_from_events` with the same `timing` (attack, release, lead; unset ones
    are the procedural engine's schema defaults); the lip-shape channels come from the phoneme
    events (word events alone give none: their lips stay neutral).
    """
    (lead,) = _or_default(lead=timing.get("lead"))
    tracks = {"open": openness_from_events(events, start_frame, n_frames, fps, **timing)}
    warm = _warmup(fps)
    times = _sample_times(start_frame - warm, n_frames + warm, fps, lead)
    phonemes = _phonemes(list(events or []))
    for channel, name in enumerate(CHANNELS[1:]):
        shape = PRESS_TIMING if name == "press" else SHAPE_TIMING
        segments = _anticipated(phonemes, channel) if phonemes else []
        raw = _track_values(times, segments, False).mean(axis=1)
        tracks[name] = _attack_release(raw, warm, shape["attack"], shape["release"], fps)
    return tracks


def openness_from_events(
    events: list[dict] | None,
    start_frame: int,
    n_frames: int,
    fps: float,
    *,
    attack: float | None = None,
    release: float | None = None,
    lead: float | None = None,
) -> np.ndarray:
    """Openness 0..1 (float32) for global frames [start_frame, start_frame + n_frames).

    Uses phoneme events ({"type": "phoneme", "start", "end", "symbol"}) when there are any,
    otherwise word events ({"type": "word", "start", "end", "text"}) as syllable humps; "time"
    is accepted for "start", and a missing end runs to the next event. Times are global
    seconds. `lead` shows each mouth shape slightly before its sound, as speakers do. Unset
    timings are the procedural engine's defaults (the schema's `lipsync.procedural`).
    """
    attack, release, lead = _or_default(attack=attack, release=release, lead=lead)
    warm = _warmup(fps)
    times = _sample_times(start_frame - warm, n_frames + warm, fps, lead)
    events = list(events or [])
    segments = _segments(events, "phoneme", _phoneme_value)
    words = not segments
    if words:
        segments = _segments(events, "word", _syllables)
    raw = _track_values(times, segments, words).mean(axis=1)
    return _attack_release(raw, warm, attack, release, fps)


def openness_from_audio(
    audio: np.ndarray,
    sample_rate: int,
    audio_start: float,
    start_frame: int,
    n_frames: int,
    fps: float,
    *,
    gate_db: float | None = None,
    full_db: float | None = None,
    curve: float | None = None,
    attack: float | None = None,
    release: float | None = None,
    lead: float | None = None,
) -> np.ndarray:
    """Openness 0..1 (float32) per frame from the RMS of a Hann window centred on each frame.

    The RMS maps linearly in amplitude from `gate_db` (closed; quieter is gated to 0) to
    `full_db` (fully open), raised to `curve` (below 1 opens quiet syllables more): the lips'
    aperture follows the amplitude envelope, as measured on speakers. A fixed mapping, rather
    than normalising by a chunk's loudest frame, keeps chunks in agreement. Samples outside
    `audio` count as silence, so a chunk matches a whole run when its audio reaches
    CONTEXT_SECONDS beyond its frames (or the speech's ends). Unset settings are the
    procedural engine's defaults (the schema's `lipsync.procedural`).
    """
    gate_db, full_db, curve, attack, release, lead = _or_default(
        gate_db=gate_db, full_db=full_db, loudness_curve=curve, attack=attack, release=release,
        lead=lead,
    )
    warm = _warmup(fps)
    frames = np.arange(start_frame - warm, start_frame + n_frames, dtype=np.float64)
    half = max(1, int(round(ENVELOPE_WINDOW * sample_rate / 2)))
    taps = np.hanning(2 * half + 1)[1:-1]
    centres = np.round(((frames + 0.5) / fps + lead) * sample_rate).astype(np.int64)
    first = centres - (half - 1) - int(round(audio_start * sample_rate))
    lo = min(0, int(first.min()))
    hi = max(len(audio), int(first.max()) + len(taps))
    padded = np.zeros(hi - lo, dtype=np.float64)
    padded[-lo : -lo + len(audio)] = np.asarray(audio, dtype=np.float64).reshape(-1)
    windows = padded[(first - lo)[:, None] + np.arange(len(taps))]
    power = (windows * windows * taps).sum(axis=1) / taps.sum()
    gate, full = 10.0 ** (gate_db / 20.0), 10.0 ** (full_db / 20.0)
    raw = np.clip((np.sqrt(power) - gate) / (full - gate), 0.0, 1.0) ** curve
    return _attack_release(raw, warm, attack, release, fps)
