"""The one log-mel front end: HiFi-GAN's, used by preprocessing, training, evaluation and TTS.

Every part of the system that turns audio into mel features calls `mel_spectrogram` (or
`log_mel` for numpy audio), so a vocoder trained here accepts the features an acoustic model
predicts and reproduces the official HiFi-GAN features exactly: reflect padding of
(n_fft - hop) / 2, periodic Hann window, no centring, magnitude with a 1e-9 floor, Slaney mel
basis, natural log of clamp(x, 1e-5).
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

SAMPLE_RATE = 22050
N_FFT = 1024
HOP = 256
WIN = 1024
N_MELS = 80
FMIN = 0.0
FMAX = 8000.0
CLAMP = 1e-5
LOG_SILENCE = float(np.log(CLAMP))
"""The feature value of digital silence: every bin clamps to 1e-5."""


SLANEY_HZ_PER_MEL = 200.0 / 3
"""Slaney's mel scale: linear below 1 kHz (this many Hz per mel), logarithmic above."""
SLANEY_LOG_HZ = 1000.0
SLANEY_LOG_MEL = SLANEY_LOG_HZ / SLANEY_HZ_PER_MEL
SLANEY_LOG_STEP = np.log(6.4) / 27.0


def hz_to_mel(freq: np.ndarray | float) -> np.ndarray:
    """Slaney's auditory-toolbox mel scale: linear below 1 kHz, logarithmic above."""
    freq = np.asarray(freq, dtype=np.float64)
    log_part = SLANEY_LOG_MEL + np.log(np.maximum(freq, SLANEY_LOG_HZ) / SLANEY_LOG_HZ) / (
        SLANEY_LOG_STEP
    )
    return np.where(freq >= SLANEY_LOG_HZ, log_part, freq / SLANEY_HZ_PER_MEL)


def mel_to_hz(mels: np.ndarray | float) -> np.ndarray:
    """Inverse of `hz_to_mel`."""
    mels = np.asarray(mels, dtype=np.float64)
    log_part = SLANEY_LOG_HZ * np.exp(
        SLANEY_LOG_STEP * (np.maximum(mels, SLANEY_LOG_MEL) - SLANEY_LOG_MEL)
    )
    return np.where(mels >= SLANEY_LOG_MEL, log_part, SLANEY_HZ_PER_MEL * mels)


def mel_filterbank(
    sample_rate: int = SAMPLE_RATE,
    n_fft: int = N_FFT,
    n_mels: int = N_MELS,
    fmin: float = FMIN,
    fmax: float | None = FMAX,
) -> np.ndarray:
    """Triangular Slaney-normalised filters, shape (n_mels, 1 + n_fft // 2), float32.

    Same construction and float rounding as librosa's `filters.mel` defaults (htk=False,
    norm='slaney'), which the official HiFi-GAN uses; `fmax=None` means sample_rate / 2.
    """
    if fmax is None:
        fmax = sample_rate / 2.0
    fft_freqs = np.linspace(0.0, sample_rate / 2.0, 1 + n_fft // 2)
    mel_points = np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2)
    edges = mel_to_hz(mel_points)
    widths = np.diff(edges)
    ramps = np.subtract.outer(edges, fft_freqs)
    weights = np.zeros((n_mels, 1 + n_fft // 2), dtype=np.float32)
    for i in range(n_mels):
        rising = -ramps[i] / widths[i]
        falling = ramps[i + 2] / widths[i + 1]
        weights[i] = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges[2 : n_mels + 2] - edges[:n_mels]))[:, np.newaxis]
    return weights


@functools.cache
def _basis_cpu(fmax: float | None) -> torch.Tensor:
    with torch.inference_mode(False):  # a cached inference tensor would break later autograd
        return torch.from_numpy(mel_filterbank(fmax=fmax))


@functools.cache
def _window_cpu() -> torch.Tensor:
    with torch.inference_mode(False):
        return torch.hann_window(WIN)


def mel_spectrogram(audio: torch.Tensor, fmax: float | None = FMAX) -> torch.Tensor:
    """Log-mel features of waveforms in [-1, 1]: (B, S) or (S,) -> (B, 80, S // 256) or (80, ...).

    Computed in float32 outside any autocast region, so bf16 training sees the same features.
    `fmax=None` gives the full band (sr/2), which HiFi-GAN uses for its mel loss target.
    """
    squeeze = audio.dim() == 1
    if squeeze:
        audio = audio.unsqueeze(0)
    pad = (N_FFT - HOP) // 2
    if audio.shape[-1] <= pad:
        raise ValueError(f"audio of {audio.shape[-1]} samples is too short for mel features "
                         f"(reflect padding needs more than {pad})")
    device = audio.device
    with torch.autocast(device.type, enabled=False):
        audio = audio.float()
        padded = F.pad(audio.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
        spec = torch.stft(
            padded,
            N_FFT,
            hop_length=HOP,
            win_length=WIN,
            window=_window_cpu().to(device),
            center=False,
            normalized=False,
            onesided=True,
            return_complex=True,
        )
        # re^2 + im^2 as two squares (half the time of summing a view_as_real's last axis,
        # the same bits)
        magnitude = torch.sqrt(spec.real.square() + spec.imag.square() + 1e-9)
        mel = torch.matmul(_basis_cpu(fmax).to(device), magnitude)
        features = torch.log(torch.clamp(mel, min=CLAMP))
    return features.squeeze(0) if squeeze else features


def log_mel(samples: np.ndarray, fmax: float | None = FMAX) -> np.ndarray:
    """`mel_spectrogram` of one mono float waveform (numpy), as float32 (80, frames)."""
    with torch.inference_mode():
        audio = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))
        return mel_spectrogram(audio, fmax=fmax).numpy()


def n_frames(n_samples: int) -> int:
    """Number of mel frames for a waveform of `n_samples` samples."""
    return (n_samples + 2 * ((N_FFT - HOP) // 2) - N_FFT) // HOP + 1
