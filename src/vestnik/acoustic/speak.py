"""Speaking with any text-to-mel and mel-to-audio pair: sentences, pieces, timings, windows.

Both neural TTS paths share this: the torch one (`vestnik.acoustic.synth.NeuralVoice`, the
`neural` engine) and the onnxruntime one (`vestnik.tts.voice`, the `voice` engine). They differ
only in how a mel is computed from token ids and how audio is computed from a mel window;
normalisation, stress marks, sentence splitting, duration rounding, phoneme events and the
vocoder's windowing live here once. This module imports no torch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from vestnik.acoustic import symbols
from vestnik.errors import VestnikError
from vestnik.tts.speech import Speech

VOCODER_WINDOW = 512
"""Mel frames the vocoder turns into audio per call."""
VOCODER_CONTEXT = 32
"""Frames of context on each side of a window: more than HiFi-GAN's receptive field (~12)."""
PAUSE_SYMBOL = "_"
"""Symbol of pause events (closes the mouth in the procedural lip-sync)."""


@dataclass
class Piece:
    """One synthesised piece of text: its audio and its token timings (in frames)."""

    text: str
    samples: np.ndarray
    tokens: list[str]
    durations: list[int]


def phoneme_events(tokens: list[str], durations: list[int], offset: float = 0.0, *,
                   frame_seconds: float) -> list[dict]:
    """Phoneme events from per-token frame counts (tokens without blanks interspersed).

    A phoneme token becomes an event with its IPA symbol, a pause token a "_" event; the frames
    of word gaps go to the phoneme before them. Zero-frame tokens produce nothing.
    """
    events: list[dict] = []
    frame = 0
    for symbol, count in zip(tokens, durations, strict=True):
        start, frame = frame, frame + count
        if count <= 0:
            continue
        begin = round(offset + start * frame_seconds, 6)
        end = round(offset + frame * frame_seconds, 6)
        if symbols.is_phoneme(symbol) or symbols.is_pause(symbol):
            name = symbol if symbols.is_phoneme(symbol) else PAUSE_SYMBOL
            if name == PAUSE_SYMBOL and events and events[-1]["symbol"] == PAUSE_SYMBOL:
                events[-1]["end"] = end
            else:
                events.append({"type": "phoneme", "start": begin, "end": end, "symbol": name})
        elif events:
            events[-1]["end"] = end
    return events


def fold_blanks(durations: list[int], add_blank: bool) -> list[int]:
    """Per-token frames with each blank's frames given to the token before it (or after, first)."""
    if not add_blank:
        return list(durations)
    folded = list(durations[1::2])
    if folded:
        folded[0] += durations[0]
        for k in range(len(folded)):
            folded[k] += durations[2 * k + 2]
    return folded


def frame_counts(logw: np.ndarray, length_scale: float) -> np.ndarray:
    """Integer frames per token from log durations (T,): boundaries at the rounded running sum
    of exp(logw) * scale, each token at least one frame before scaling, so rounding errors do
    not accumulate. The numpy twin of `AcousticModel.predict_durations` (float32, half to even
    as torch.round)."""
    frames = np.maximum(np.exp(logw.astype(np.float32)), np.float32(1.0))
    frames = frames * np.float32(length_scale)
    ends = np.round(np.cumsum(frames, dtype=np.float32)).astype(np.int64)
    starts = np.concatenate([np.zeros(1, np.int64), ends[:-1]])
    return np.maximum(ends - starts, 0)


def frame_index(durations: np.ndarray, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """For each frame, its token's index (frames,) and (fraction through the token, log
    duration / 4) (frames, 2): the numpy twin of `vestnik.acoustic.model.frame_index`."""
    durations = np.asarray(durations, dtype=np.int64)
    ends = np.cumsum(durations)
    positions = np.arange(frames)
    index = np.minimum(np.searchsorted(ends, positions, side="right"), durations.size - 1)
    length = np.maximum(durations[index], 1).astype(np.float32)
    start = ends[index].astype(np.float32) - length
    fraction = (positions.astype(np.float32) - start + np.float32(0.5)) / length
    where = np.stack([np.clip(fraction, 0.0, 1.0), np.log(length) / np.float32(4.0)], axis=-1)
    return index.astype(np.int64), where.astype(np.float32)


class SpeakingVoice(ABC):
    """Text to `Speech` around a subclass's `mel` (token ids -> log-mel, frames per id) and
    `generate` (one mel window -> audio)."""

    engine: str = "neural"
    add_blank: bool = True
    sample_rate: int = 22050
    hop: int = 256

    @abstractmethod
    def mel(self, ids: list[int], length_scale: float = 1.0) -> tuple[np.ndarray, list[int]]:
        """Log-mel (80, frames) of token ids (blanks not yet added) and frames per id."""

    @abstractmethod
    def generate(self, window: np.ndarray) -> np.ndarray:
        """Audio (frames * hop samples) of one float32 mel window (80, frames)."""

    @property
    def frame_seconds(self) -> float:
        return self.hop / self.sample_rate

    def vocode(self, mel: np.ndarray) -> np.ndarray:
        """Audio (frames * hop samples, float32 in [-1, 1]) of a log-mel, window by window, so
        memory stays bounded for any length; the context makes the seams exact."""
        frames = mel.shape[1]
        pieces = []
        for start in range(0, frames, VOCODER_WINDOW):
            stop = min(frames, start + VOCODER_WINDOW)
            lo, hi = max(0, start - VOCODER_CONTEXT), min(frames, stop + VOCODER_CONTEXT)
            audio = self.generate(np.ascontiguousarray(mel[:, lo:hi], dtype=np.float32))
            pieces.append(audio.reshape(-1)[(start - lo) * self.hop : (stop - lo) * self.hop])
        audio = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
        return np.clip(audio, -1.0, 1.0).astype(np.float32)

    def speak_piece(self, text: str, length_scale: float = 1.0) -> Piece | None:
        """One sentence (already normalised); None when it has no phonemes."""
        tokens = symbols.text_tokens(text)
        self._unknown |= tokens.unknown
        if not any(symbols.is_phoneme(s) for s in tokens.symbols):
            return None
        mel, durations = self.mel(tokens.ids, length_scale)
        return Piece(text, self.vocode(mel), tokens.symbols, durations)

    def synthesize(self, text: str, *, length_scale: float = 1.0, sentence_pause: float = 0.35,
                   max_chars: int = 300) -> Speech:
        """Speak Russian text: normalise (stress marks kept), split into sentences, join them
        with pauses; phoneme events come from the durations the model chose."""
        from vestnik.text.normalize import normalize, split_sentences, strip_stress

        if not length_scale > 0:
            raise VestnikError(f"length_scale must be positive, not {length_scale}")
        if sentence_pause < 0:
            raise VestnikError(f"sentence_pause must not be negative, not {sentence_pause}")
        normalized = normalize(text, stress=True)
        if not any(ch.isalpha() for ch in normalized):
            raise VestnikError(f"nothing speakable in the text {text[:60]!r}")
        rate = self.sample_rate
        gap = np.zeros(int(round(sentence_pause * rate)), np.float32)
        self._unknown: set[str] = set()
        audio: list[np.ndarray] = []
        events: list[dict] = []
        offset = 0
        for piece_text in split_sentences(normalized, max_chars):
            piece = self.speak_piece(piece_text, length_scale)
            if piece is None:
                continue
            if audio:
                audio.append(gap)
                offset += gap.size
            start = offset / rate
            events.append({"type": "sentence", "start": round(start, 6),
                           "end": round((offset + piece.samples.size) / rate, 6),
                           "text": strip_stress(piece.text)})
            events += phoneme_events(piece.tokens, piece.durations, start,
                                     frame_seconds=self.frame_seconds)
            audio.append(piece.samples)
            offset += piece.samples.size
        symbols.warn_unknown(self._unknown, "the text")
        if not audio:
            raise VestnikError(f"no phonemes in the text {text[:60]!r}")
        return Speech(np.concatenate(audio), rate, events, strip_stress(normalized),
                      self.engine)
