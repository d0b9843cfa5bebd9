"""Neural speech: text -> phonemes -> acoustic model -> HiFi-GAN, sentence by sentence.

Long texts are cut into sentences (and long sentences into clause groups) by the normaliser's
splitter and each piece is synthesised alone, and the vocoder runs over fixed windows of mel
frames with context on both sides, so memory stays bounded whatever the text's length. Phoneme
timings come from the durations the model chose, in the same speech.json events as eSpeak's.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
import torch

from vestnik.acoustic import symbols
from vestnik.acoustic.checkpoint import load_acoustic, mel_differences
from vestnik.errors import VestnikError
from vestnik.mel import HOP, SAMPLE_RATE
from vestnik.tts.speech import Speech

log = logging.getLogger("vestnik.acoustic")

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


def phoneme_events(tokens: list[str], durations: list[int], offset: float = 0.0) -> list[dict]:
    """Phoneme events from per-token frame counts (tokens without blanks interspersed).

    A phoneme token becomes an event with its IPA symbol, a pause token a "_" event; the frames
    of word gaps go to the phoneme before them. Zero-frame tokens produce nothing.
    """
    seconds_per_frame = HOP / SAMPLE_RATE
    events: list[dict] = []
    frame = 0
    for symbol, count in zip(tokens, durations, strict=True):
        start, frame = frame, frame + count
        if count <= 0:
            continue
        begin = round(offset + start * seconds_per_frame, 6)
        end = round(offset + frame * seconds_per_frame, 6)
        if symbols.is_phoneme(symbol) or symbols.is_pause(symbol):
            name = symbol if symbols.is_phoneme(symbol) else PAUSE_SYMBOL
            if name == PAUSE_SYMBOL and events and events[-1]["symbol"] == PAUSE_SYMBOL:
                events[-1]["end"] = end
            else:
                events.append({"type": "phoneme", "start": begin, "end": end, "symbol": name})
        elif events:
            events[-1]["end"] = end
    return events


def _fold_blanks(durations: list[int], add_blank: bool) -> list[int]:
    """Per-token frames with each blank's frames given to the token before it (or after, first)."""
    if not add_blank:
        return list(durations)
    folded = list(durations[1::2])
    if folded:
        folded[0] += durations[0]
        for k in range(len(folded)):
            folded[k] += durations[2 * k + 2]
    return folded


class NeuralVoice:
    """A loaded acoustic model and vocoder pair, checked to share one mel front end."""

    def __init__(self, acoustic_path: str | os.PathLike, vocoder_path: str | os.PathLike,
                 device: str = "auto"):
        from vestnik.training import choose_device
        from vestnik.vocoder.checkpoint import load_generator

        self.device = choose_device(device)
        self.acoustic, self.acoustic_meta = load_acoustic(acoustic_path, self.device)
        self.vocoder, self.vocoder_meta = load_generator(vocoder_path, device=self.device)
        vocoder_mel = self.vocoder_meta.get("mel")
        if vocoder_mel is None:
            log.info("%s records no mel settings (official HiFi-GAN file): assuming the "
                     "official front end, which vestnik.mel reproduces", vocoder_path)
        else:
            problems = mel_differences(self.acoustic_meta["mel"], vocoder_mel)
            if problems:
                raise VestnikError(
                    f"acoustic model {acoustic_path} and vocoder {vocoder_path} use different "
                    "mel settings (acoustic vs vocoder): " + "; ".join(problems),
                    path=vocoder_path,
                )
        self.add_blank = bool(self.acoustic.config["add_blank"])
        self.sample_rate = SAMPLE_RATE
        self._unknown: set[str] = set()

    @torch.inference_mode()
    def mel(self, ids: list[int], length_scale: float = 1.0) -> tuple[np.ndarray, list[int]]:
        """Log-mel (80, frames) of token ids (blanks not yet added) and frames per id."""
        model_ids = symbols.intersperse(ids) if self.add_blank else list(ids)
        tokens = torch.tensor([model_ids], dtype=torch.long, device=self.device)
        mel, durations, _ = self.acoustic.infer(tokens, length_scale=length_scale)
        durations = durations[0].cpu().tolist()
        return mel[0].float().cpu().numpy(), _fold_blanks(durations, self.add_blank)

    @torch.inference_mode()
    def vocode(self, mel: np.ndarray) -> np.ndarray:
        """Audio (frames * 256 samples, float32 in [-1, 1]) of a log-mel, window by window."""
        frames = mel.shape[1]
        pieces = []
        for start in range(0, frames, VOCODER_WINDOW):
            stop = min(frames, start + VOCODER_WINDOW)
            lo, hi = max(0, start - VOCODER_CONTEXT), min(frames, stop + VOCODER_CONTEXT)
            window = torch.from_numpy(np.ascontiguousarray(mel[:, lo:hi], dtype=np.float32))
            audio = self.vocoder(window.unsqueeze(0).to(self.device)).float().reshape(-1)
            pieces.append(audio[(start - lo) * HOP : (stop - lo) * HOP].cpu().numpy())
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
        """Speak Russian text: normalise, split into sentences, join them with pauses."""
        from vestnik.text.normalize import normalize, split_sentences, strip_stress

        if not length_scale > 0:
            raise VestnikError(f"length_scale must be positive, not {length_scale}")
        if sentence_pause < 0:
            raise VestnikError(f"sentence_pause must not be negative, not {sentence_pause}")
        normalized = normalize(text, stress=True)
        if not any(ch.isalpha() for ch in normalized):
            raise VestnikError(f"nothing speakable in the text {text[:60]!r}")
        gap = np.zeros(int(round(sentence_pause * SAMPLE_RATE)), np.float32)
        self._unknown = set()
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
            start = offset / SAMPLE_RATE
            events.append({"type": "sentence", "start": round(start, 6),
                           "end": round((offset + piece.samples.size) / SAMPLE_RATE, 6),
                           "text": strip_stress(piece.text)})
            events += phoneme_events(piece.tokens, piece.durations, start)
            audio.append(piece.samples)
            offset += piece.samples.size
        symbols.warn_unknown(self._unknown, "the text")
        if not audio:
            raise VestnikError(f"no phonemes in the text {text[:60]!r}")
        return Speech(np.concatenate(audio), SAMPLE_RATE, events, strip_stress(normalized),
                      "neural")
