"""Objective measures shared by the vocoder and acoustic evaluations.

- Mel-cepstral distortion (MCD, dB): the cepstrum of the natural-log mel amplitudes (vestnik.mel
  log-mels) on the warped axis the mel channels sample, log S(w) = c0 + 2 sum_d c_d cos(d w),
  so c_d is the mean over the channels of log S cos(d w); coefficients 1..24 enter (c0, the
  loudness, does not), and MCD = 10 / ln 10 * sqrt(2 * sum_d (c_d - c'_d)^2) per frame pair.
  Frames pair one to one for copy synthesis, or along a dynamic-time-warping path when the two
  utterances have their own timing (an acoustic model's free-running output against the recording).
- Phone boundary error: a model's alignment against hand-made phone labels. The two phone
  strings come from different sources (eSpeak's transcription, a labeller's), so they are
  first aligned by edit distance over broad classes; the start times of the matching pairs are
  then compared.
- Loudness envelope correlation: how closely one speech's loudness follows another's over
  time (re-voiced speech against its recording), frame by frame at the video's rate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

MCD_ORDER = 24
_MCD_SCALE = 10.0 / math.log(10.0) * math.sqrt(2.0)


def mel_cepstra(log_mel: np.ndarray, order: int = MCD_ORDER) -> np.ndarray:
    """(order, frames) cepstral coefficients 1..order of a (n_mels, frames) natural-log mel."""
    n_mels = log_mel.shape[0]
    k = np.arange(n_mels)
    basis = np.cos(np.pi / n_mels * (k[None, :] + 0.5) * np.arange(1, order + 1)[:, None])
    return (basis / n_mels) @ log_mel.astype(np.float64)


def dtw_path(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i, j) of the cheapest monotonic path through `cost` (N, M), corner to corner.

    Steps are (1, 0), (0, 1) and (1, 1); the table is filled one anti-diagonal at a time.
    """
    n, m = cost.shape
    total = np.full((n + 1, m + 1), np.inf)
    total[0, 0] = 0.0
    for d in range(2, n + m + 1):
        i = np.arange(max(1, d - m), min(n, d - 1) + 1)
        j = d - i
        best = np.minimum(np.minimum(total[i - 1, j], total[i, j - 1]), total[i - 1, j - 1])
        total[i, j] = cost[i - 1, j - 1] + best
    path_i, path_j = [n - 1], [m - 1]
    i, j = n, m
    while i > 1 or j > 1:
        moves = ((total[i - 1, j - 1], i - 1, j - 1), (total[i - 1, j], i - 1, j),
                 (total[i, j - 1], i, j - 1))
        _, i, j = min(moves, key=lambda move: move[0])
        path_i.append(i - 1)
        path_j.append(j - 1)
    return np.array(path_i[::-1]), np.array(path_j[::-1])


def mel_cepstral_distortion(reference: np.ndarray, estimate: np.ndarray,
                            align: bool = False) -> float:
    """MCD in dB between two (n_mels, frames) log-mels; `align` pairs frames by DTW."""
    ref, est = mel_cepstra(reference), mel_cepstra(estimate)
    if align:
        cost = np.sqrt(((ref.T[:, None, :] - est.T[None, :, :]) ** 2).sum(-1))
        i, j = dtw_path(cost)
        diff = ref[:, i] - est[:, j]
    else:
        n = min(ref.shape[1], est.shape[1])
        diff = ref[:, :n] - est[:, :n]
    return float(_MCD_SCALE * np.mean(np.sqrt((diff**2).sum(axis=0))))


# Broad phone classes: (kind, base) of an IPA token of vestnik.acoustic.symbols and of a
# festvox-ru label (doubled vowels are stressed, doubled consonants palatalised).
_IPA_VOWEL_BASE = {"a": "a", "ɑ": "a", "ʌ": "a", "ə": "a", "e": "e", "ɛ": "e", "i": "i",
                   "ɪ": "i", "o": "o", "ɵ": "o", "u": "u", "y": "y"}
_IPA_CONSONANT_BASE = {"ɭ": "l", "ɡ": "g", "ʃ": "sh", "ʒ": "zh", "ɕ": "sch", "ʑ": "zh",
                       "x": "h", "ɣ": "h"}
_LABEL_VOWEL_BASE = {"a": "a", "aa": "a", "ay": "a", "e": "e", "ee": "e", "ae": "e", "i": "i",
                     "ii": "i", "o": "o", "oo": "o", "u": "u", "uu": "u", "ur": "u", "y": "y",
                     "yy": "y"}
_LABEL_SPECIAL = {"c": "ts", "ch": "sh", "sh": "sh", "sch": "sch", "zh": "zh", "j": "j"}
PAUSE = ("pause", "")


def ipa_class(token: str) -> tuple[str, str]:
    """('vowel' | 'consonant' | 'pause', base) of an acoustic-model token."""
    from vestnik.acoustic import symbols

    if symbols.is_pause(token):
        return PAUSE
    bare = token.lstrip("".join(symbols.STRESS)).rstrip(symbols.PALATAL)
    if bare in _IPA_VOWEL_BASE:
        return "vowel", _IPA_VOWEL_BASE[bare]
    return "consonant", _IPA_CONSONANT_BASE.get(bare, bare)


def label_class(phone: str) -> tuple[str, str]:
    """('vowel' | 'consonant' | 'pause', base) of a festvox-ru phone label."""
    if phone in ("pau", "sil", "#"):
        return PAUSE
    if phone in _LABEL_VOWEL_BASE:
        return "vowel", _LABEL_VOWEL_BASE[phone]
    if phone in _LABEL_SPECIAL:
        return "consonant", _LABEL_SPECIAL[phone]
    if len(phone) == 2 and phone[0] == phone[1]:
        phone = phone[0]
    return "consonant", phone


def _substitution(a: tuple[str, str], b: tuple[str, str]) -> float:
    if a == b:
        return 0.0
    if a[0] == b[0] == "vowel":
        return 0.5
    if a[0] == b[0] == "consonant":
        return 0.8
    return 3.0


def match_phones(ours: Sequence[tuple[str, str]], theirs: Sequence[tuple[str, str]],
                 gap: float = 1.0) -> list[tuple[int, int]]:
    """Index pairs of an edit-distance alignment whose classes match (same kind)."""
    n, m = len(ours), len(theirs)
    cost = np.zeros((n + 1, m + 1))
    cost[:, 0] = gap * np.arange(n + 1)
    cost[0, :] = gap * np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost[i, j] = min(cost[i - 1, j] + gap, cost[i, j - 1] + gap,
                             cost[i - 1, j - 1] + _substitution(ours[i - 1], theirs[j - 1]))
    pairs = []
    i, j = n, m
    while i > 0 and j > 0:
        diagonal = cost[i - 1, j - 1] + _substitution(ours[i - 1], theirs[j - 1])
        if math.isclose(cost[i, j], diagonal):
            if ours[i - 1][0] == theirs[j - 1][0]:
                pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif math.isclose(cost[i, j], cost[i - 1, j] + gap):
            i -= 1
        else:
            j -= 1
    return pairs[::-1]


def boundary_errors(tokens: Sequence[str], starts: Sequence[float],
                    labels: Sequence[tuple[float, float, str]]) -> list[float]:
    """|start time difference| in seconds of every matched sounding phone (pauses left out).

    `tokens` and `starts` are a model's phone tokens (word gaps removed) and their start times
    on the recording's clock; `labels` are (start, end, phone) of the human labels.
    """
    ours = [ipa_class(t) for t in tokens]
    theirs = [label_class(p) for _, _, p in labels]
    return [abs(starts[i] - labels[j][0]) for i, j in match_phones(ours, theirs)
            if ours[i] != PAUSE]


def write_evaluation(files: Mapping[str, Path], fields: Sequence[str], rows: list[dict],
                     head: Mapping[str, Any], mean_keys: Sequence[str]) -> dict[str, Any]:
    """The metrics table (`files["table"]`, one row per utterance) and summary
    (`files["metrics"]`: `head`, the utterance count and duration, the mean of each of
    `mean_keys` over the utterances that have it)."""
    from vestnik.io import write_json, write_tsv

    table = [{k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()} for r in rows]
    write_tsv(files["table"], fields, table)
    summary: dict[str, Any] = {
        **head,
        "utterances": len(rows),
        "seconds": round(sum(r["seconds"] for r in rows), 3),
    }
    for key in mean_keys:
        values = [r[key] for r in rows if r[key] is not None]
        summary[key] = round(float(np.mean(values)), 4) if values else None
    write_json(files["metrics"], summary)
    return summary


ENVELOPE_FLOOR_DB = -60.0
"""Loudness floor (dB below each signal's loudest frame) of `envelope_correlation`: below it
a frame is silence, however quiet."""


def loudness_envelope(samples: np.ndarray, sample_rate: int, fps: float = 25.0) -> np.ndarray:
    """Level in dB (relative to the loudest frame, floored at ENVELOPE_FLOOR_DB) of every
    1/fps-second frame, the last one zero-padded."""
    step = sample_rate / fps
    frames = max(1, math.ceil(len(samples) / step - 1e-9))
    edges = np.round(np.arange(frames + 1) * step).astype(np.int64)
    squares = np.concatenate([[0.0], np.cumsum(np.asarray(samples, np.float64) ** 2)])
    ends = np.minimum(edges[1:], len(samples))
    power = (squares[ends] - squares[np.minimum(edges[:-1], len(samples))]) / step
    level = 10 * np.log10(np.maximum(power, 1e-20))
    return np.maximum(level - level.max(), ENVELOPE_FLOOR_DB)


def envelope_correlation(a: np.ndarray, b: np.ndarray, sample_rate: int,
                         fps: float = 25.0) -> float:
    """Pearson r of two speeches' loudness envelopes (dB, 1/fps frames) over their common
    frames: 1 when one gets loud and quiet exactly where the other does."""
    x, y = loudness_envelope(a, sample_rate, fps), loudness_envelope(b, sample_rate, fps)
    n = min(len(x), len(y))
    x, y = x[:n], y[:n]
    if n < 2 or x.std() == 0 or y.std() == 0:
        return 0.0
    return float(np.corrcoef(x, y)[0, 1])
