"""Copy-synthesis evaluation: vocode validation utterances from their mels, compare with originals.

Metrics per utterance: mel L1 (the training validation measure), log-spectral distance in dB,
mel-cepstral distortion in dB (vestnik.speech_metrics) and, when the optional `pesq` / `pystoi`
packages are installed (the `eval` extra), wide-band PESQ and STOI.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import soxr
import torch

from vestnik import layout, media, plots
from vestnik.corpus import TARGET_RATE
from vestnik.mel import HOP, N_FFT, WIN, log_mel, mel_spectrogram
from vestnik.speech_metrics import mel_cepstral_distortion, write_evaluation
from vestnik.vocoder.data import load_utterance, read_split

log = logging.getLogger("vestnik.vocoder")

METRIC_FIELDS = ("id", "seconds", "mel_l1", "lsd_db", "mcd_db", "pesq_wb", "stoi")


def power_spectrogram(audio: np.ndarray) -> np.ndarray:
    """|STFT|^2 (n_fft 1024, hop 256, Hann), shape (513, frames)."""
    signal = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    spec = torch.stft(signal, N_FFT, hop_length=HOP, win_length=WIN,
                      window=torch.hann_window(WIN), center=True, return_complex=True)
    return spec.abs().pow(2).numpy().astype(np.float64)


def log_spectral_distance(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Mean over frames of the RMS (over frequency) difference of 10*log10 power spectra, dB."""
    n = min(reference.size, estimate.size)
    ref = 10 * np.log10(power_spectrogram(reference[:n]) + 1e-10)
    est = 10 * np.log10(power_spectrogram(estimate[:n]) + 1e-10)
    return float(np.mean(np.sqrt(np.mean((ref - est) ** 2, axis=0))))


def perceptual_scores(reference: np.ndarray, estimate: np.ndarray) -> dict[str, float | None]:
    """Wide-band PESQ (at 16 kHz) and STOI, or None for a package that is not installed."""
    n = min(reference.size, estimate.size)
    reference, estimate = reference[:n].astype(np.float64), estimate[:n].astype(np.float64)
    scores: dict[str, float | None] = {"pesq_wb": None, "stoi": None}
    try:
        from pesq import pesq
    except ImportError:
        pesq = None
    if pesq is not None:
        ref16 = soxr.resample(reference, TARGET_RATE, 16000, quality="VHQ")
        est16 = soxr.resample(estimate, TARGET_RATE, 16000, quality="VHQ")
        try:
            scores["pesq_wb"] = float(pesq(16000, ref16, est16, "wb"))
        except Exception as exc:  # pesq raises its own error types for e.g. no speech found
            log.warning("PESQ failed: %s", exc)
    try:
        from pystoi import stoi
    except ImportError:
        stoi = None
    if stoi is not None:
        scores["stoi"] = float(stoi(reference, estimate, TARGET_RATE, extended=False))
    return scores


def plot_comparison(path: Path, pairs: list[tuple[str, np.ndarray, np.ndarray]]) -> None:
    """Original vs resynthesised log-power spectrograms, one row per utterance."""
    rows = [
        (ident, [(label, 10 * np.log10(power_spectrogram(audio) + 1e-10))
                 for label, audio in (("original", reference), ("vocoded", estimate))])
        for ident, reference, estimate in pairs
    ]
    plots.spectrogram_pairs(path, rows, HOP / TARGET_RATE, TARGET_RATE / 2000)


def evaluate_vocoder(
    generator_path: str | os.PathLike,
    val_tsv: str | os.PathLike,
    out: str | os.PathLike | Mapping[str, str | os.PathLike],
    limit: int | None = None,
    plots: int = 3,
    device: str = "auto",
) -> dict[str, Any]:
    """Resynthesise validation utterances (into wavs/ beside the metrics); write the metrics
    table and summary and a spectrogram PNG.

    `out` is the rule's declared outputs (keys of vestnik.layout.VOCODER_EVAL_FILES), or a
    folder that gets the layout's file names.
    """
    from vestnik.training import choose_device
    from vestnik.vocoder.checkpoint import load_generator

    files = layout.outputs(out, layout.VOCODER_EVAL_FILES)
    out_dir = files["metrics"].parent
    torch_device = choose_device(device)
    generator, meta = load_generator(generator_path, device=torch_device)
    loss_fmax = meta.get("loss_fmax")
    items = read_split(val_tsv)[: limit or None]
    rows, pairs = [], []
    for item in items:
        audio, mel = load_utterance(item)
        with torch.inference_mode():
            fake = generator(torch.from_numpy(mel[None]).to(torch_device)).squeeze().cpu().numpy()
        media.write_wav(out_dir / "wavs" / f"{item.id}.wav", fake, TARGET_RATE)
        n = min(audio.size, fake.size)
        with torch.inference_mode():
            real_mel = mel_spectrogram(torch.from_numpy(audio[:n]), fmax=loss_fmax)
            fake_mel = mel_spectrogram(torch.from_numpy(fake[:n].copy()), fmax=loss_fmax)
        row = {
            "id": item.id,
            "seconds": round(n / TARGET_RATE, 3),
            "mel_l1": float(torch.mean(torch.abs(real_mel - fake_mel))),
            "lsd_db": log_spectral_distance(audio, fake),
            "mcd_db": mel_cepstral_distortion(log_mel(audio[:n]), log_mel(fake[:n])),
            **perceptual_scores(audio, fake),
        }
        rows.append(row)
        if len(pairs) < plots:
            pairs.append((item.id, audio[:n], fake[:n]))
    summary = write_evaluation(files, METRIC_FIELDS, rows, {"generator": str(generator_path)},
                               ("mel_l1", "lsd_db", "mcd_db", "pesq_wb", "stoi"))
    plot_comparison(files["plot"], pairs)
    log.info("evaluated %s on %d utterances: %s", generator_path, len(rows), summary)
    return summary
