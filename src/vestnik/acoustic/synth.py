"""Neural speech: text -> phonemes -> acoustic model -> HiFi-GAN, sentence by sentence.

Long texts are cut into sentences (and long sentences into clause groups) by the normaliser's
splitter and each piece is synthesised alone, and the vocoder runs over fixed windows of mel
frames with context on both sides, so memory stays bounded whatever the text's length. Phoneme
timings come from the durations the model chose, in the same speech.json events as eSpeak's.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import torch

from vestnik.acoustic import symbols
from vestnik.acoustic.checkpoint import load_acoustic, mel_differences
from vestnik.acoustic.speak import (  # noqa: F401  (the names this module always offered)
    PAUSE_SYMBOL,
    VOCODER_CONTEXT,
    VOCODER_WINDOW,
    Piece,
    SpeakingVoice,
    fold_blanks,
)
from vestnik.acoustic.speak import phoneme_events as _phoneme_events
from vestnik.errors import VestnikError
from vestnik.mel import HOP, SAMPLE_RATE

log = logging.getLogger("vestnik.acoustic")
_fold_blanks = fold_blanks


def phoneme_events(tokens: list[str], durations: list[int], offset: float = 0.0) -> list[dict]:
    """`vestnik.acoustic.speak.phoneme_events` on this code's mel clock (vestnik.mel)."""
    return _phoneme_events(tokens, durations, offset, frame_seconds=HOP / SAMPLE_RATE)


class NeuralVoice(SpeakingVoice):
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
        self.hop = HOP
        self._unknown: set[str] = set()

    @torch.inference_mode()
    def mel(self, ids: list[int], length_scale: float = 1.0) -> tuple[np.ndarray, list[int]]:
        """Log-mel (80, frames) of token ids (blanks not yet added) and frames per id."""
        model_ids = symbols.intersperse(ids) if self.add_blank else list(ids)
        tokens = torch.tensor([model_ids], dtype=torch.long, device=self.device)
        mel, durations, _ = self.acoustic.infer(tokens, length_scale=length_scale)
        durations = durations[0].cpu().tolist()
        return mel[0].float().cpu().numpy(), fold_blanks(durations, self.add_blank)

    @torch.inference_mode()
    def generate(self, window: np.ndarray) -> np.ndarray:
        """Audio of one mel window (80, frames)."""
        mel = torch.from_numpy(window).unsqueeze(0).to(self.device)
        return self.vocoder(mel).float().reshape(-1).cpu().numpy()
