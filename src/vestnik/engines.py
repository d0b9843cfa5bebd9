"""The engine registry: one descriptor per TTS and lip-sync engine.

The workflow (device slots and model inputs in common.smk), the service catalog and the job
code all read engines from here. Adding an engine is one `Engine` entry below plus its settings
block in config/schema.yaml (see docs/adding-an-engine.md). This module imports no engine code:
factories are loaded on first use, so the workflow can ask about engines while it parses.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

from vestnik.errors import VestnikError

KINDS = ("tts", "lipsync")


@dataclass(frozen=True)
class Weight:
    """A weights file an engine loads: `path`, and the experiment that trains it, if any.

    `trainer` names the config block (`acoustic`, `vocoder`) whose `experiments` build the
    file; the workflow trains such a file when the experiment is defined in the config.
    """

    path: str
    trainer: str | None = None
    experiment: str | None = None


def _no_weights(block: dict) -> dict[str, Weight]:
    return {}


def _never(block: dict) -> bool:
    return False


def _always(block: dict) -> bool:
    return True


@dataclass(frozen=True)
class Engine:
    """One engine: where it is built from, and what a job using it needs.

    factory: "module:attribute"; TTS factories are `synthesize(text, **settings)`, lip-sync
        factories are classes `(settings, *, job, gpu)` with `check` and `render`.
    device_slot: whether a job with these (validated) settings takes a slot of `gpu:`
        (`resources: gpu=1` in the workflow).
    weights: {setting: Weight} of the files these settings name.
    extra: the optional dependency set (pyproject.toml) the engine needs, if any; the
        workflow's conda environment for its steps is workflow/envs/vestnik-<extra>.yaml.
    """

    kind: str
    name: str
    factory: str
    summary: str
    device_slot: Callable[[dict], bool] = field(default=_never)
    weights: Callable[[dict], dict[str, Weight]] = field(default=_no_weights)
    extra: str | None = None

    def load(self) -> Callable:
        """The engine's factory (imports the engine's module)."""
        module, attribute = self.factory.split(":")
        return getattr(importlib.import_module(module), attribute)

    @property
    def needs_weights(self) -> bool:
        return self.weights is not _no_weights


def _neural_tts_weights(block: dict) -> dict[str, Weight]:
    from vestnik.tts.neural import model_files

    return model_files(block)


def _neural_tts_slot(block: dict) -> bool:
    return block["device"] != "cpu"


def _voice_tts_weights(block: dict) -> dict[str, Weight]:
    from vestnik.tts.voice import voice_files

    return voice_files(block)


def _wav2lip_weights(block: dict) -> dict[str, Weight]:
    return {"checkpoint": Weight(str(block["checkpoint"]))}


REGISTRY: dict[str, dict[str, Engine]] = {
    "tts": {
        "espeak": Engine(
            "tts", "espeak", "vestnik.tts.espeak:synthesize", "eSpeak NG, no weights"
        ),
        "neural": Engine(
            "tts",
            "neural",
            "vestnik.tts.neural:synthesize",
            "trained acoustic model + HiFi-GAN vocoder",
            device_slot=_neural_tts_slot,
            weights=_neural_tts_weights,
            extra="torch",
        ),
        "voice": Engine(
            "tts",
            "voice",
            "vestnik.tts.voice:synthesize",
            "a voice folder's ONNX graphs on onnxruntime (CPU, no torch)",
            weights=_voice_tts_weights,
            extra="onnx",
        ),
    },
    "lipsync": {
        "procedural": Engine(
            "lipsync",
            "procedural",
            "vestnik.lipsync.procedural:ProceduralEngine",
            "mouth warped on the avatar, no weights",
        ),
        "wav2lip": Engine(
            "lipsync",
            "wav2lip",
            "vestnik.lipsync.wav2lip:Wav2LipEngine",
            "official-checkpoint Wav2Lip network",
            device_slot=_always,
            weights=_wav2lip_weights,
            extra="torch",
        ),
    },
}


def names(kind: str) -> tuple[str, ...]:
    """Names of the registered engines of `kind` ("tts" or "lipsync")."""
    return tuple(REGISTRY[kind])


def engine(kind: str, name: str, job: str | None = None) -> Engine:
    """The descriptor of engine `name`; a VestnikError names the known ones."""
    try:
        return REGISTRY[kind][name]
    except KeyError:
        known = ", ".join(names(kind))
        raise VestnikError(f"unknown {kind} engine '{name}' (known: {known})", job=job) from None


def chosen(settings: dict, kind: str, job: str | None = None) -> tuple[Engine, dict]:
    """(descriptor, settings block) of the engine a job's settings choose for `kind`."""
    section = settings.get(kind) or {}
    spec = engine(kind, section.get("engine"), job)
    return spec, dict(section.get(spec.name) or {})


def takes_device_slot(settings: dict, kind: str) -> bool:
    """Whether the job's `kind` step takes a device slot (a `gpu` resource)."""
    spec, block = chosen(settings, kind)
    return spec.device_slot(block)


def weight_files(settings: dict, kind: str) -> dict[str, Weight]:
    """The weights files the job's `kind` engine loads, by the setting that names them."""
    spec, block = chosen(settings, kind)
    return spec.weights(block)
