"""The `neural` TTS engine: a trained acoustic model and HiFi-GAN vocoder (see docs/acoustic.md).

Settings (`defaults.tts.neural`) name an acoustic and a vocoder experiment, or give paths of
their files; experiment names resolve to the files the training rules write. This module does
not import torch itself, so the workflow can ask it for model paths while parsing.
"""

from __future__ import annotations

import os
from pathlib import Path

from vestnik.errors import VestnikError
from vestnik.tts.speech import Speech

ACOUSTIC_MODEL = "results/models/acoustic/{name}/model.pt"
VOCODER_MODEL = "results/models/vocoder/{name}/generator.pt"

_VOICES: dict[tuple, object] = {}


def _is_path(value: str) -> bool:
    return "/" in value or os.sep in value or value.endswith((".pt", ".pth", ".ckpt"))


def _named(neural: dict, kind: str) -> str:
    value = neural.get(kind)
    if not value:
        raise VestnikError(f"tts.neural.{kind} is not set: name an experiment or a model file")
    return str(value)


def model_paths(neural: dict) -> tuple[str, str]:
    """(acoustic model file, vocoder generator file) named by the engine's settings."""
    acoustic, vocoder = _named(neural, "acoustic"), _named(neural, "vocoder")
    return (
        acoustic if _is_path(acoustic) else ACOUSTIC_MODEL.format(name=acoustic),
        vocoder if _is_path(vocoder) else VOCODER_MODEL.format(name=vocoder),
    )


def trained_experiments(neural: dict) -> dict[str, str]:
    """{"acoustic": name, "vocoder": name} for the settings that name experiments, not files."""
    return {
        kind: str(neural[kind])
        for kind in ("acoustic", "vocoder")
        if neural.get(kind) and not _is_path(str(neural[kind]))
    }


def voice(neural: dict):
    """The process's loaded voice for these settings (loaded once, reloaded if a file changes)."""
    from vestnik.acoustic.synth import NeuralVoice

    acoustic, vocoder = model_paths(neural)
    device = str(neural.get("device", "auto"))
    stamps = tuple(Path(p).stat().st_mtime_ns if Path(p).is_file() else None
                   for p in (acoustic, vocoder))
    key = (acoustic, vocoder, device, stamps)
    if key not in _VOICES:
        _VOICES.clear()
        _VOICES[key] = NeuralVoice(acoustic, vocoder, device)
    return _VOICES[key]


def synthesize(
    text: str,
    *,
    acoustic: str,
    vocoder: str,
    length_scale: float = 1.0,
    sentence_pause: float = 0.35,
    max_chars: int = 300,
    device: str = "auto",
) -> Speech:
    """Speak Russian text with the neural voice; `length_scale` > 1 speaks slower."""
    settings = {"acoustic": acoustic, "vocoder": vocoder, "device": device}
    return voice(settings).synthesize(
        text, length_scale=length_scale, sentence_pause=sentence_pause, max_chars=max_chars
    )
