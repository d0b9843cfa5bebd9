"""Training data: random fixed-length segments of preprocessed wavs with their mel frames.

Which utterances and offsets a batch holds is a pure function of (seed, epoch, batch index), so
a resumed run draws exactly the batches the uninterrupted run would have drawn.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import torch

from vestnik.distributed import SINGLE, Ranks
from vestnik.errors import VestnikError
from vestnik.io import read_tsv
from vestnik.mel import HOP, LOG_SILENCE

CACHE_SECONDS = 3600.0
"""Corpora shorter than this are held in memory; longer ones are read from disk per batch."""


@dataclass(frozen=True)
class Utterance:
    id: str
    wav: str
    mel: str
    frames: int
    seconds: float


def read_split(path: str | os.PathLike) -> list[Utterance]:
    """Utterances of a train.tsv / val.tsv written by the corpus preprocessing."""
    rows = read_tsv(path)
    if not rows:
        raise VestnikError("the split lists no utterances", path=path)
    return [
        Utterance(r["id"], r["wav"], r["mel"], int(r["frames"]), float(r["seconds"])) for r in rows
    ]


def load_utterance(item: Utterance) -> tuple[np.ndarray, np.ndarray]:
    """(audio float32 in [-1, 1) as int16 / 32768, log-mel float32 (80, frames))."""
    audio, _rate = sf.read(item.wav, dtype="float32")
    mel = np.load(item.mel, allow_pickle=False)
    return audio, mel


class SegmentBatches:
    """Batches of (mel (B, 80, segment / 256), audio (B, segment)) for one training run."""

    def __init__(self, items: list[Utterance], segment: int, batch_size: int, seed: int):
        if not items:
            raise VestnikError("no training utterances")
        self.items = items
        self.segment = segment
        self.frames = segment // HOP
        self.batch_size = batch_size
        self.seed = seed
        self.per_epoch = max(1, len(items) // batch_size)
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] | None = (
            {} if sum(i.seconds for i in items) <= CACHE_SECONDS else None
        )

    def _load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if self._cache is None:
            return load_utterance(self.items[index])
        if index not in self._cache:
            self._cache[index] = load_utterance(self.items[index])
        return self._cache[index]

    def batch(self, epoch: int, index: int,
              ranks: Ranks = SINGLE) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's share of batch `index` of `epoch` (0 <= index < per_epoch).

        Each row's offset comes from its own (seed, epoch, index, row) stream, so a row is the
        same segment whichever rank (of however many) draws it.
        """
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.items))
        order = np.resize(order, self.per_epoch * self.batch_size)
        rows = order[index * self.batch_size : (index + 1) * self.batch_size]
        chosen = ranks.share(list(enumerate(rows)))
        mels = np.full((len(chosen), 80, self.frames), LOG_SILENCE, dtype=np.float32)
        audios = np.zeros((len(chosen), self.segment), dtype=np.float32)
        for row, (position, item_index) in enumerate(chosen):
            audio, mel = self._load(int(item_index))
            usable = min(mel.shape[1], audio.size // HOP)
            rng = np.random.default_rng([self.seed, epoch, index, 1, position])
            start = int(rng.integers(0, usable - self.frames + 1)) if usable > self.frames else 0
            piece_mel = mel[:, start : start + self.frames]
            piece_audio = audio[start * HOP : start * HOP + self.segment]
            mels[row, :, : piece_mel.shape[1]] = piece_mel
            audios[row, : piece_audio.size] = piece_audio
        return torch.from_numpy(mels), torch.from_numpy(audios)


def full_utterance(item: Utterance) -> tuple[torch.Tensor, torch.Tensor]:
    """(mel (1, 80, T), audio (T * 256,)) of a whole utterance, for validation."""
    audio, mel = load_utterance(item)
    frames = min(mel.shape[1], audio.size // HOP)
    return (torch.from_numpy(mel[None, :, :frames].copy()),
            torch.from_numpy(audio[: frames * HOP].copy()))

