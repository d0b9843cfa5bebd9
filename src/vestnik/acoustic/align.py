"""Forced alignment of a transcript to a recording with the acoustic model's own prior.

The model predicts per token a mean `mu` in its normalised mel space; training aligns text to
frames by the monotonic path that maximises log N(frame; mu, I) (vestnik.acoustic.mas). The
same likelihood aligns a transcript to any recording of it:

- `banded_alignment` aligns a whole long recording at once, keeping only a band of tokens
  around the best partial path at each frame, so it costs frames x band instead of frames x
  tokens (a 10-minute recording: 52k frames x 400 tokens, not x 18k), with no frame x token
  matrix held in memory. It is what assigns the transcript to pieces.
- `align_piece` is the exact search (all tokens of a piece against all its frames).

Both report a per-frame *fit*: the log-likelihood of the frame under the token the path gives
it, less that under the best-fitting token in play (<= 0). Where the transcript says what was
spoken the path mostly takes the best-fitting token and the fit stays near zero; where it does
not, no path through the written tokens fits and the fit falls far below (docs/revoice.md has
the figures on festvox-ru's real recordings and shuffled transcripts).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from vestnik.acoustic import symbols
from vestnik.acoustic.mas import NEG_INF, search_durations
from vestnik.acoustic.model import AcousticModel


@dataclass
class Encoded:
    """Model tokens of a text (blanks interspersed when the model uses them) and their means.

    `mu` is (tokens, 80) float32 in the model's normalised mel space; `symbol` holds each model
    token's symbol index into the caller's token list, or -1 for a blank.
    """

    ids: list[int]
    mu: np.ndarray
    symbol: np.ndarray


def model_ids(ids: list[int], add_blank: bool) -> tuple[list[int], np.ndarray]:
    """Model input ids of symbol ids, and for each the index of its symbol (-1: a blank)."""
    if not add_blank:
        return list(ids), np.arange(len(ids), dtype=np.int64)
    owner = np.full(2 * len(ids) + 1, -1, dtype=np.int64)
    owner[1::2] = np.arange(len(ids))
    return symbols.intersperse(list(ids)), owner


@torch.inference_mode()
def encode(model: AcousticModel, ids: list[int]) -> Encoded:
    """The prior means of one token sequence (one encoder pass, on the model's device)."""
    add_blank = bool(model.config["add_blank"])
    full, owner = model_ids(ids, add_blank)
    device = next(model.parameters()).device
    tokens = torch.tensor([full], dtype=torch.long, device=device)
    _, mu, _, _ = model.encode(tokens, torch.tensor([len(full)], device=device))
    return Encoded(full, mu[0].float().cpu().numpy(), owner)


def normalised_frames(model: AcousticModel, mel: np.ndarray) -> np.ndarray:
    """(80, frames) log-mel -> (frames, 80) float32 in the model's normalised space."""
    mean = model.mel_mean.float().cpu().numpy()
    std = model.mel_std.float().cpu().numpy()
    return ((mel.T - mean) / std).astype(np.float32)


@dataclass
class Path:
    """A monotonic alignment: the model token of every frame, and every frame's fit."""

    token: np.ndarray
    fit: np.ndarray

    def durations(self, n_tokens: int) -> np.ndarray:
        """Frames per model token."""
        return np.bincount(self.token, minlength=n_tokens).astype(np.int64)


def banded_alignment(mu: np.ndarray, frames: np.ndarray, band: int) -> Path | None:
    """The best monotonic path of `mu` (tokens, 80) through `frames` (frames, 80) in a band.

    At each frame only `band` consecutive tokens are in play, starting half a band behind the
    token the best partial path is on (the start never moves back). The path starts on the
    first token and ends on the last one; None when the band never reaches the last token
    (more text than the recording holds, or a transcript that does not fit it).
    """
    n_tokens, n_frames = mu.shape[0], frames.shape[0]
    if n_tokens < 1 or n_frames < n_tokens:
        return None
    width = min(band, n_tokens)
    half_mu = 0.5 * np.einsum("ij,ij->i", mu, mu)
    moved = np.zeros((n_frames, width), dtype=bool)
    starts = np.zeros(n_frames, dtype=np.int64)
    best = np.empty(n_frames)
    value = np.full(width + 1, NEG_INF)  # value[0]: the token before the band
    logp = mu[:width] @ frames[0] - half_mu[:width]
    value[1] = logp[0]
    best[0] = logp.max()
    lo = 0
    last_lo = n_tokens - width
    half = width // 2
    stay, advance = value[1:], value[:-1]
    merged = np.empty(width)  # the loop reuses its arrays: it runs once per frame
    for j in range(1, n_frames):
        new_lo = min(max(lo, lo + int(stay.argmax()) - half), last_lo)
        shift = new_lo - lo
        if shift:
            value[: width + 1 - shift] = value[shift:].copy()
            value[width + 1 - shift:] = NEG_INF
            lo = new_lo
        logp = mu[lo : lo + width] @ frames[j]
        logp -= half_mu[lo : lo + width]
        np.greater(advance, stay, out=moved[j])
        np.maximum(stay, advance, out=merged)
        np.add(merged, logp, out=stay)
        value[0] = NEG_INF
        starts[j] = lo
        best[j] = logp.max()
    if lo + width < n_tokens or value[n_tokens - lo] <= NEG_INF / 2:
        return None
    token = np.empty(n_frames, dtype=np.int64)
    t = n_tokens - 1
    for j in range(n_frames - 1, -1, -1):
        token[j] = t
        if j > 0 and moved[j, t - starts[j]]:
            t -= 1
    if t != 0:
        return None
    chosen = np.einsum("ij,ij->i", mu[token], frames) - half_mu[token]
    return Path(token, np.minimum(chosen - best, 0.0))


def align_piece(mu: np.ndarray, frames: np.ndarray) -> Path:
    """The exact best monotonic path (vestnik.acoustic.mas) and its per-frame fit."""
    logp = frames @ mu.T - 0.5 * np.einsum("ij,ij->i", mu, mu)[None, :]  # (frames, tokens)
    durations = search_durations(logp[:, None, :], np.array([mu.shape[0]]),
                                 np.array([frames.shape[0]]))[0]
    token = np.repeat(np.arange(mu.shape[0]), durations)
    fit = np.minimum(logp[np.arange(frames.shape[0]), token] - logp.max(axis=1), 0.0)
    return Path(token, fit)


def stretch_fits(fit: np.ndarray, speech: np.ndarray, window: int) -> tuple[np.ndarray,
                                                                             np.ndarray]:
    """Mean fit over every run of `window` speech frames (silence is skipped: any token may
    sit in a pause), stepping half a window; (fits, frame index where each stretch starts).

    Fewer speech frames than a window give one stretch over all of them.
    """
    where = np.flatnonzero(speech)
    if where.size == 0:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    values = fit[where]
    if where.size <= window:
        return np.array([values.mean()]), where[:1]
    sums = np.concatenate([[0.0], np.cumsum(values)])
    step = max(1, window // 2)
    firsts = np.arange(0, where.size - window + 1, step)
    if firsts[-1] != where.size - window:
        firsts = np.append(firsts, where.size - window)
    return (sums[firsts + window] - sums[firsts]) / window, where[firsts]
