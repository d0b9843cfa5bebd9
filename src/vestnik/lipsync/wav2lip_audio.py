"""Wav2Lip's audio front end, computed for global frame times so chunks match one long render.

The features are those the official checkpoints were trained on: 16 kHz audio, pre-emphasis
0.97, |STFT| with n_fft 800, hop 200, periodic Hann window 800 (centred frames), 80 Slaney
mels from 55 to 7600 Hz, 20*log10 with a 1e-5 floor, minus ref_level_db 20, then the
symmetric normalisation of [-100, 0] dB onto [-4, 4] with clipping.

Where the official code pads the waveform by reflection and clamps the last window, the signal
here is silence outside the speech. Every value (resampled sample, mel frame) is then a
function of its global index and the nearby speech only, and is computed by the same sequence
of floating-point operations wherever a chunk's audio starts: a chunk with enough context
yields bit-identical features, and so bit-identical frames. The difference to the official
padding is confined to the first and last 25 ms of the speech.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from vestnik.mel import mel_filterbank

MEL_RATE = 16000
N_FFT = 800
HOP = 200
WIN = 800
N_MELS = 80
FMIN = 55.0
FMAX = 7600.0
PREEMPHASIS = 0.97
REF_LEVEL_DB = 20.0
MIN_LEVEL_DB = -100.0
MAX_ABS_VALUE = 4.0
MEL_STEPS = 16
"""Mel frames in the window the network sees for one video frame (0.2 s)."""
MELS_PER_SECOND = MEL_RATE / HOP

ZERO_CROSSINGS = 64
"""Half-length of the resampling filter in zero crossings of its sinc."""
ROLLOFF = 0.9475
"""Resampler pass band as a fraction of the lower Nyquist frequency."""
KAISER_BETA = 14.769656459379492
"""With 64 zero crossings and the roll-off above: the filter of resampy's `kaiser_best`, which
librosa 0.7 used when the official code loaded audio at 16 kHz."""


@functools.cache
def _mel_basis() -> tuple[tuple[int, int, np.ndarray], ...]:
    """Each filter's non-zero bin range and weights (float64), for an exact per-frame sum."""
    basis = mel_filterbank(MEL_RATE, N_FFT, N_MELS, FMIN, FMAX).astype(np.float64)
    filters = []
    for row in basis:
        nonzero = np.flatnonzero(row)
        lo, hi = (int(nonzero[0]), int(nonzero[-1]) + 1) if nonzero.size else (0, 0)
        filters.append((lo, hi, row[lo:hi].copy()))
    return tuple(filters)


@functools.cache
def _window() -> np.ndarray:
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(WIN) / WIN)


@functools.cache
def _resampler(in_rate: int, out_rate: int) -> tuple[int, int, int, np.ndarray]:
    """Polyphase Kaiser-windowed sinc: (p, q, half_width, table[q, 2 * half_width]).

    Output sample n sits at input position n * p / q; phase n * p mod q picks the table row,
    whose taps apply to input samples floor(n * p / q) - half_width + 1 ... + half_width.
    """
    gcd = math.gcd(in_rate, out_rate)
    p, q = in_rate // gcd, out_rate // gcd
    cutoff = 0.5 * ROLLOFF * min(1.0, out_rate / in_rate)
    half = int(math.ceil(ZERO_CROSSINGS / (2.0 * cutoff)))
    taps = np.arange(-half + 1, half + 1, dtype=np.float64)
    offsets = np.arange(q, dtype=np.float64)[:, None] / q
    t = taps[None, :] - offsets
    kernel = 2.0 * cutoff * np.sinc(2.0 * cutoff * t)
    kernel *= np.i0(KAISER_BETA * np.sqrt(np.clip(1.0 - (t / half) ** 2, 0.0, 1.0)))
    kernel /= np.i0(KAISER_BETA)
    kernel /= kernel.sum(axis=1, keepdims=True)
    return p, q, half, kernel


def input_span(in_rate: int, first: int, count: int, out_rate: int = MEL_RATE) -> tuple[int, int]:
    """Global input samples [lo, hi) that output samples [first, first + count) depend on."""
    if in_rate == out_rate:
        return first, first + count
    p, q, half, _ = _resampler(in_rate, out_rate)
    last = first + count - 1
    return (first * p) // q - half + 1, (last * p) // q + half + 1


def resample_span(
    samples: np.ndarray, in_rate: int, offset: int, first: int, count: int, out_rate: int = MEL_RATE
) -> np.ndarray:
    """Output samples [first, first + count) of the whole signal resampled to `out_rate`.

    `samples[0]` is global input sample `offset`; input outside `samples` is taken as zero.
    Each output sample is a fixed-order sum over its taps, so its value does not depend on
    `offset` or `count` as long as its taps lie inside `samples` (or outside the speech).
    """
    x = np.asarray(samples, dtype=np.float64)
    if in_rate == out_rate:
        out = np.zeros(count)
        lo, hi = max(first, offset), min(first + count, offset + len(x))
        if hi > lo:
            out[lo - first : hi - first] = x[lo - offset : hi - offset]
        return out
    p, q, half, table = _resampler(in_rate, out_rate)
    n = np.arange(first, first + count, dtype=np.int64)
    base = (n * p) // q
    phase = (n * p) % q
    lo = int(base[0]) - half + 1 if count else 0
    hi = int(base[-1]) + half + 1 if count else 0
    padded = np.zeros(max(hi - lo, 0))
    a, b = max(lo, offset), min(hi, offset + len(x))
    if b > a:
        padded[a - lo : b - lo] = x[a - offset : b - offset]
    start = base - lo - half + 1
    weights = table[phase]
    out = np.zeros(count)
    for tap in range(2 * half):
        out += padded[start + tap] * weights[:, tap]
    return out


def mel_input_span(first: int, count: int) -> tuple[int, int]:
    """16 kHz samples [lo, hi) that mel frames [first, first + count) depend on.

    Frame m is centred on sample m * HOP and spans WIN samples; pre-emphasis needs one more.
    """
    return first * HOP - WIN // 2 - 1, (first + count - 1) * HOP + WIN // 2


def mel_frames(wav16: np.ndarray, offset: int, first: int, count: int) -> np.ndarray:
    """Normalised mel frames [first, first + count) as float32 (80, count).

    `wav16[0]` is global 16 kHz sample `offset`; samples outside `wav16` are taken as zero.
    Frames are transformed one at a time with the same operations, so a frame's value does
    not depend on which other frames are computed with it.
    """
    lo, hi = mel_input_span(first, count)
    signal = resample_span(wav16, MEL_RATE, offset, lo, hi - lo, MEL_RATE)
    emphasised = signal[1:] - PREEMPHASIS * signal[:-1]
    window = _window()
    magnitudes = np.empty((count, N_FFT // 2 + 1))
    for i in range(count):
        frame = emphasised[i * HOP : i * HOP + WIN]
        magnitudes[i] = np.abs(np.fft.rfft(frame * window))
    mel = np.zeros((count, N_MELS))
    for k, (b_lo, b_hi, weights) in enumerate(_mel_basis()):
        column = np.zeros(count)
        for j in range(b_hi - b_lo):
            column += magnitudes[:, b_lo + j] * weights[j]
        mel[:, k] = column
    min_level = np.exp(MIN_LEVEL_DB / 20.0 * np.log(10.0))
    db = 20.0 * np.log10(np.maximum(min_level, mel)) - REF_LEVEL_DB
    normalised = (2.0 * MAX_ABS_VALUE) * ((db - MIN_LEVEL_DB) / -MIN_LEVEL_DB) - MAX_ABS_VALUE
    return np.clip(normalised, -MAX_ABS_VALUE, MAX_ABS_VALUE).T.astype(np.float32)


def mel_start(frame: int, fps: float) -> int:
    """First mel frame of video frame `frame`'s window (the official `int(i * 80 / fps)`)."""
    return int(frame * (MELS_PER_SECOND / fps))


def frame_mels(
    samples: np.ndarray, sample_rate: int, offset: int, first_frame: int, n_frames: int, fps: float
) -> tuple[np.ndarray, int]:
    """Mel frames covering the windows of video frames [first_frame, first_frame + n_frames).

    `samples[0]` is global sample `offset` at `sample_rate`. Returns (mel (80, T), m0) where
    column c is global mel frame m0 + c; frame k's window is columns
    mel_start(k) - m0 ... + 16.
    """
    m0 = mel_start(first_frame, fps)
    m1 = mel_start(first_frame + n_frames - 1, fps) + MEL_STEPS
    lo, hi = mel_input_span(m0, m1 - m0)
    wav16 = resample_span(samples, sample_rate, offset, lo, hi - lo)
    return mel_frames(wav16, lo, m0, m1 - m0), m0


def needed_input(sample_rate: int, first_frame: int, n_frames: int, fps: float) -> tuple[int, int]:
    """Global samples [lo, hi) at `sample_rate` that the frames' mel windows depend on."""
    m0 = mel_start(first_frame, fps)
    m1 = mel_start(first_frame + n_frames - 1, fps) + MEL_STEPS
    lo, hi = mel_input_span(m0, m1 - m0)
    return input_span(sample_rate, lo, hi - lo)
