"""The `neural` TTS engine: a trained acoustic model and HiFi-GAN vocoder (see docs/acoustic.md).

Settings (`defaults.tts.neural`) name an acoustic and a vocoder experiment, or give paths of
their files; experiment names resolve to the files the training rules write. This module does
not import torch itself, so the workflow can ask it for model paths while parsing.
"""

from __future__ import annotations

import os

from vestnik.engines import Weight
from vestnik.errors import VestnikError
from vestnik.io import loaded_once
from vestnik.layout import TRAINED_MODEL
from vestnik.tts.speech import Speech

_VOICES: dict[tuple, object] = {}
TRAINERS = ("acoustic", "vocoder")
"""The settings naming model files, which are also the config blocks that train them."""


def _is_path(value: str) -> bool:
    return "/" in value or os.sep in value or value.endswith((".pt", ".pth", ".ckpt"))


def model_files(neural: dict) -> dict[str, Weight]:
    """{"acoustic": Weight, "vocoder": Weight}: the files the settings name, and for an
    experiment name, the experiment that trains the file (see vestnik.layout)."""
    files = {}
    for kind in TRAINERS:
        value = neural.get(kind)
        if not value:
            raise VestnikError(f"tts.neural.{kind} is not set: name an experiment or a model file")
        value = str(value)
        if _is_path(value):
            files[kind] = Weight(value)
        else:
            files[kind] = Weight(TRAINED_MODEL[kind].format(name=value), kind, value)
    return files


def model_paths(neural: dict) -> tuple[str, str]:
    """(acoustic model file, vocoder generator file) named by the engine's settings."""
    files = model_files(neural)
    return files["acoustic"].path, files["vocoder"].path


def voice(neural: dict):
    """The process's loaded voice for these settings (loaded once, reloaded if a file changes)."""
    from vestnik.acoustic.synth import NeuralVoice

    acoustic, vocoder = model_paths(neural)
    device = str(neural["device"])
    return loaded_once(_VOICES, (acoustic, vocoder, device), (acoustic, vocoder),
                       lambda: NeuralVoice(acoustic, vocoder, device))


def synthesize(
    text: str,
    *,
    acoustic: str,
    vocoder: str,
    length_scale: float,
    sentence_pause: float,
    max_chars: int,
    device: str,
) -> Speech:
    """Speak Russian text with the neural voice; `length_scale` > 1 speaks slower.

    The settings are the validated `tts.neural` block (vestnik.config.engine_settings); with
    `device: auto` the caller has already taken a device slot and passes its device.
    """
    settings = {"acoustic": acoustic, "vocoder": vocoder, "device": device}
    return voice(settings).synthesize(
        text, length_scale=length_scale, sentence_pause=sentence_pause, max_chars=max_chars
    )
