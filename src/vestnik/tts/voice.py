"""The `voice` TTS engine: a voice folder's ONNX graphs run by onnxruntime on the CPU, no torch.

The text side (normalisation, stress marks, eSpeak phonemes, sentence splitting), the duration
rounding, the vocoder's windows and the phoneme events are the `neural` engine's own
(vestnik.acoustic.speak); only the networks run here instead of in torch. See docs/voice.md.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from vestnik.acoustic import symbols
from vestnik.acoustic.speak import SpeakingVoice, fold_blanks, frame_counts, frame_index
from vestnik.engines import Weight
from vestnik.errors import VestnikError
from vestnik.io import loaded_once
from vestnik.tts.speech import Speech
from vestnik.voice.package import GRAPHS, MANIFEST, read_voice

_VOICES: dict[tuple, OnnxVoice] = {}


def voice_files(block: dict) -> dict[str, Weight]:
    """{"path": the folder's voice.json}: the file the workflow makes an input of the tts step
    and the service checks and pins. It lists every other file of the folder with its hash,
    so a changed folder changes it too; `path` may name the folder or this file."""
    return {"path": Weight(str(voice_folder(str(block["path"])) / MANIFEST))}


def voice_folder(path: str | os.PathLike) -> Path:
    """The voice folder a `path` setting names (the folder itself or its voice.json)."""
    path = Path(path)
    return path.parent if path.name == MANIFEST else path


def _session(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own types for unreadable graphs
        raise VestnikError(f"voice file corrupt: {path.name} ({exc})", path=path) from exc


class OnnxVoice(SpeakingVoice):
    """A voice folder's encoder, decoder and generator graphs in onnxruntime sessions."""

    engine = "voice"

    def __init__(self, folder: str | os.PathLike, threads: int = 0, job: str | None = None):
        try:
            import onnxruntime  # noqa: F401
        except ImportError as exc:
            raise VestnikError("the `voice` TTS engine needs onnxruntime: pip install "
                               "'vestnik[onnx]'", job=job) from exc
        self.voice = read_voice(voice_folder(folder), (*GRAPHS, "val_ids.txt"), job=job)
        self.add_blank = self.voice.add_blank
        self.sample_rate = self.voice.sample_rate
        self.hop = self.voice.hop
        self.encoder = _session(self.voice.path("encoder.onnx"), threads)
        self.decoder = _session(self.voice.path("decoder.onnx"), threads)
        self.generator = _session(self.voice.path("generator.onnx"), threads)
        self._unknown: set[str] = set()

    def encode(self, model_ids: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(hidden (1, T, H), mu (1, T, 80), log durations (T,)) of token ids with blanks."""
        tokens = np.asarray([model_ids], dtype=np.int64)
        hidden, mu, logw = self.encoder.run(None, {"tokens": tokens})
        return hidden, mu, logw[0]

    def decode(self, hidden: np.ndarray, mu: np.ndarray, durations: np.ndarray) -> np.ndarray:
        """Log-mel (80, frames) for given integer durations per token."""
        frames = max(int(durations.sum()), 1)
        index, where = frame_index(durations, frames)
        mel = self.decoder.run(None, {"hidden": hidden, "mu": mu, "index": index[None],
                                      "where": where[None]})[0]
        return mel[0]

    def mel(self, ids: list[int], length_scale: float = 1.0) -> tuple[np.ndarray, list[int]]:
        model_ids = symbols.intersperse(ids) if self.add_blank else list(ids)
        hidden, mu, logw = self.encode(model_ids)
        durations = frame_counts(logw, length_scale)
        return self.decode(hidden, mu, durations), fold_blanks(durations.tolist(),
                                                                 self.add_blank)

    def generate(self, window: np.ndarray) -> np.ndarray:
        return self.generator.run(None, {"mel": window[None]})[0].reshape(-1)


def load(path: str, threads: int, job: str | None = None) -> OnnxVoice:
    """The process's loaded voice for this folder (reloaded when a file of it changes)."""
    folder = voice_folder(path)
    return loaded_once(_VOICES, (str(folder.resolve()), threads),
                       [folder / name for name in (MANIFEST, *GRAPHS)],
                       lambda: OnnxVoice(folder, threads, job))


def synthesize(
    text: str,
    *,
    path: str,
    length_scale: float,
    sentence_pause: float,
    max_chars: int,
    threads: int,
) -> Speech:
    """Speak Russian text with the voice folder at `path`; `length_scale` > 1 speaks slower.

    The settings are the validated `tts.voice` block (vestnik.config.engine_settings).
    """
    return load(path, threads).synthesize(
        text, length_scale=length_scale, sentence_pause=sentence_pause, max_chars=max_chars
    )
