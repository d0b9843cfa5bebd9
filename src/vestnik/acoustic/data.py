"""Training data: phoneme ids of each utterance's text with its preprocessed log-mel frames.

The corpus shards (vestnik.corpus) already hold each utterance's mel in the vocoder's front
end; here the text is normalised and turned into table tokens once per run. Batches group
utterances of similar length (less padding); which utterances a batch holds is a pure function
of (seed, epoch, batch index), so a resumed run draws exactly the batches it would have drawn.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
import torch

from vestnik.acoustic import symbols
from vestnik.distributed import SINGLE, Ranks
from vestnik.errors import VestnikError
from vestnik.io import read_tsv
from vestnik.mel import LOG_SILENCE, N_MELS

log = logging.getLogger("vestnik.acoustic")

CACHE_FRAMES = 3_000_000
"""Corpora with fewer mel frames than this (about 9 h) are held in memory after first use."""


@dataclass(frozen=True)
class Item:
    id: str
    mel: str
    frames: int
    tokens: tuple[int, ...]
    phonemes: str


def text_ids(text: str, add_blank: bool) -> tuple[list[int], symbols.Tokens]:
    """Model input ids of one raw text (normalised here, stress marks kept) and its tokens."""
    from vestnik.text.normalize import normalize

    tokens = symbols.text_tokens(normalize(text, stress=True))
    ids = tokens.ids
    return (symbols.intersperse(ids) if add_blank else ids), tokens


def read_items(path: str | os.PathLike, add_blank: bool, max_frames: int) -> list[Item]:
    """Utterances of a train.tsv / val.tsv with their token ids; unusable ones are logged.

    An utterance is left out when its text has no phonemes, when it is longer than
    `max_frames`, or when it has fewer frames than tokens (no alignment can give every token a
    frame).
    """
    rows = read_tsv(path)
    if not rows:
        raise VestnikError("the split lists no utterances", path=path)
    items, unknown, skipped = [], set(), {"no phonemes": 0, "too long": 0, "too short": 0}
    for row in rows:
        ids, tokens = text_ids(row["text"], add_blank)
        unknown |= tokens.unknown
        frames = int(row["frames"])
        if not tokens.symbols:
            skipped["no phonemes"] += 1
        elif frames > max_frames:
            skipped["too long"] += 1
        elif frames < len(ids):
            skipped["too short"] += 1
        else:
            items.append(Item(row["id"], row["mel"], frames, tuple(ids), " ".join(tokens.symbols)))
    symbols.warn_unknown(unknown, str(path))
    left_out = {reason: count for reason, count in skipped.items() if count}
    if left_out:
        log.info("%s: %d utterances used, left out %s", path, len(items), left_out)
    if not items:
        raise VestnikError(f"no usable utterances (left out: {left_out})", path=path)
    return items


class MelStore:
    """Mel arrays by item index, cached in memory for small corpora."""

    def __init__(self, items: list[Item]):
        self.items = items
        self._cache: dict[int, np.ndarray] | None = (
            {} if sum(i.frames for i in items) <= CACHE_FRAMES else None
        )

    def get(self, index: int) -> np.ndarray:
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        item = self.items[index]
        mel = np.load(item.mel, allow_pickle=False)
        if mel.ndim != 2 or mel.shape[0] != N_MELS:
            raise VestnikError(f"mel has shape {mel.shape}, expected ({N_MELS}, frames)",
                               path=item.mel)
        mel = mel[:, : item.frames].astype(np.float32)
        if self._cache is not None:
            self._cache[index] = mel
        return mel


def mel_statistics(store: MelStore, limit: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation over (a seeded sample of) the training mels."""
    count = len(store.items)
    chosen = np.random.default_rng([seed, 7]).permutation(count)[: max(1, limit)]
    total = np.zeros(N_MELS)
    square = np.zeros(N_MELS)
    frames = 0
    for index in sorted(int(i) for i in chosen):
        mel = store.get(index).astype(np.float64)
        total += mel.sum(axis=1)
        square += (mel**2).sum(axis=1)
        frames += mel.shape[1]
    mean = total / frames
    std = np.sqrt(np.maximum(square / frames - mean**2, 1e-6))
    return mean.astype(np.float32), std.astype(np.float32)


def collate(items: list[Item], mels: list[np.ndarray]) -> dict[str, torch.Tensor]:
    """Padded tensors: tokens (B, N), token_lengths, mels (B, 80, T) padded with silence."""
    token_lengths = [len(item.tokens) for item in items]
    mel_lengths = [mel.shape[1] for mel in mels]
    tokens = np.full((len(items), max(token_lengths)), symbols.PAD_ID, dtype=np.int64)
    batch_mels = np.full((len(items), N_MELS, max(mel_lengths)), LOG_SILENCE, dtype=np.float32)
    for row, (item, mel) in enumerate(zip(items, mels, strict=True)):
        tokens[row, : len(item.tokens)] = item.tokens
        batch_mels[row, :, : mel.shape[1]] = mel
    return {
        "tokens": torch.from_numpy(tokens),
        "token_lengths": torch.tensor(token_lengths),
        "mels": torch.from_numpy(batch_mels),
        "mel_lengths": torch.tensor(mel_lengths),
    }


class TextMelBatches:
    """Length-bucketed batches, shuffled per epoch, deterministic in (seed, epoch, index)."""

    def __init__(self, items: list[Item], batch_size: int, seed: int):
        self.store = MelStore(items)
        self.items = items
        self.batch_size = max(1, min(batch_size, len(items)))
        self.seed = seed
        self.per_epoch = max(1, len(items) // self.batch_size)
        self._epoch_groups: tuple[int, list[np.ndarray]] | None = None

    def _groups(self, epoch: int) -> list[np.ndarray]:
        if self._epoch_groups is not None and self._epoch_groups[0] == epoch:
            return self._epoch_groups[1]
        rng = np.random.default_rng([self.seed, epoch])
        # a random remainder sits out this epoch (not always the longest utterances)
        kept = rng.permutation(len(self.items))[: self.per_epoch * self.batch_size]
        lengths = np.array([self.items[i].frames for i in kept], dtype=np.float64)
        kept = kept[np.argsort(lengths * rng.uniform(0.9, 1.1, size=lengths.size), kind="stable")]
        groups = [kept[i * self.batch_size : (i + 1) * self.batch_size]
                  for i in range(self.per_epoch)]
        groups = [groups[i] for i in rng.permutation(len(groups))]
        self._epoch_groups = (epoch, groups)
        return groups

    def batch(self, epoch: int, index: int, ranks: Ranks = SINGLE) -> dict[str, torch.Tensor]:
        """This rank's share of batch `index` (0 <= index < per_epoch) of `epoch`: every
        `world`-th of its (length-sorted) rows, so each rank gets similar lengths."""
        chosen = ranks.share([int(i) for i in self._groups(epoch)[index]])
        return collate([self.items[i] for i in chosen], [self.store.get(i) for i in chosen])
