"""Generator files: official HiFi-GAN checkpoints in, exported inference generators out.

Official files are `torch.save({'generator': state_dict})` with weight-norm `weight_g` /
`weight_v` keys and no config (the official inference reads `config.json` beside the file).
Exported files (`generator.pt`) hold the weight-norm-free state dict plus the generator config
and mel settings, so they load without any side file. Both are read with
`torch.load(weights_only=True)`: a checkpoint from the internet cannot run code.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from vestnik import mel as melfe
from vestnik.errors import VestnikError
from vestnik.training import read_torch_file, save_atomic
from vestnik.vocoder.config import resolve_generator
from vestnik.vocoder.models import GENERATOR_CONFIGS, GENERATOR_KEYS, Generator

FORMAT = "vestnik-hifigan-generator-1"


def read_generator_file(path: str | os.PathLike) -> dict[str, Any]:
    """The file's top-level dict; a bare state dict is wrapped as {'generator': ...}."""
    path = Path(path)
    obj = read_torch_file(path, "generator checkpoint")
    if isinstance(obj, Mapping) and "generator" in obj:
        return dict(obj)
    if isinstance(obj, Mapping) and obj and all(torch.is_tensor(v) for v in obj.values()):
        return {"generator": dict(obj)}
    raise VestnikError("no 'generator' state dict in the checkpoint", path=path)


def state_mismatches(model: torch.nn.Module, state: Mapping[str, torch.Tensor]) -> list[str]:
    """Missing keys, unexpected keys and shape differences between `state` and `model`."""
    expected = model.state_dict()
    problems = [f"missing key {key}" for key in expected if key not in state]
    problems += [f"unexpected key {key}" for key in state if key not in expected]
    problems += [
        f"shape of {key}: checkpoint {tuple(state[key].shape)}, model {tuple(value.shape)}"
        for key, value in expected.items()
        if key in state and tuple(state[key].shape) != tuple(value.shape)
    ]
    return problems


def _has_weight_norm(state: Mapping[str, torch.Tensor]) -> bool:
    return any(key.endswith(".weight_v") for key in state)


def _config_beside(path: Path) -> dict | None:
    """Generator settings from an official `config.json` in the checkpoint's folder."""
    candidate = path.parent / "config.json"
    if not candidate.is_file():
        return None
    try:
        data = json.loads(candidate.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if all(key in data for key in GENERATOR_KEYS):
        return {key: data[key] for key in GENERATOR_KEYS}
    return None


def _fits(config: dict, state: Mapping[str, torch.Tensor]) -> list[str]:
    model = Generator.from_config(config)
    if not _has_weight_norm(state):
        model.remove_weight_norm()
    return state_mismatches(model, state)


def _refuse(path: object, what: str, problems: list[str]) -> VestnikError:
    shown = problems[:25]
    more = f"\n  ... and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
    return VestnikError(
        f"checkpoint does not fit {what} ({len(problems)} mismatches):\n  "
        + "\n  ".join(shown) + more,
        path=path,
    )


def generator_config_for(
    path: str | os.PathLike, data: Mapping[str, Any], spec: str | Mapping | None = None
) -> dict[str, Any]:
    """The generator settings a checkpoint is loaded with.

    Given `spec` (v1/v2/v3 or settings) wins; then a config stored in the file, then an official
    `config.json` beside it; otherwise the official V1/V2/V3 whose keys and shapes fit.
    """
    path = Path(path)
    if spec is not None:
        return resolve_generator(spec)
    if "config" in data:
        return resolve_generator(dict(data["config"]))
    beside = _config_beside(path)
    if beside is not None:
        return resolve_generator(beside)
    for name, config in GENERATOR_CONFIGS.items():
        if not _fits(config, data["generator"]):
            return resolve_generator(name)
    problems = _fits(GENERATOR_CONFIGS["v1"], data["generator"])
    raise _refuse(path, "any of the official V1/V2/V3 generators (closest: V1)", problems)


def load_generator_weights(
    model: Generator, state: Mapping[str, torch.Tensor], path: object, what: str
) -> None:
    """Load a state dict (with or without weight norm) into `model`, refusing any mismatch.

    `model` may hold weight norm or not; a weight-norm state is folded when the model has none.
    """
    if _has_weight_norm(state) and not model.has_weight_norm:
        source = Generator.from_config(model.config)
        problems = state_mismatches(source, state)
        if problems:
            raise _refuse(path, what, problems)
        source.load_state_dict(state)
        state = source.remove_weight_norm().state_dict()
    elif not _has_weight_norm(state) and model.has_weight_norm:
        plain = Generator.from_config(model.config).remove_weight_norm()
        problems = state_mismatches(plain, state)
        if problems:
            raise _refuse(path, what, problems)
        state = _with_weight_norm(state, model.state_dict())
    problems = state_mismatches(model, state)
    if problems:
        raise _refuse(path, what, problems)
    model.load_state_dict(state)


def _with_weight_norm(
    state: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Plain `weight` entries split into `weight_v` = weight and `weight_g` = its norm."""
    converted = {}
    for key, value in state.items():
        prefix = key[: -len("weight")]
        if key.endswith("weight") and f"{prefix}weight_v" in target:
            dims = tuple(range(1, value.dim()))
            converted[f"{prefix}weight_g"] = torch.linalg.vector_norm(value, dim=dims, keepdim=True)
            converted[f"{prefix}weight_v"] = value
        else:
            converted[key] = value
    return converted


def load_generator(
    path: str | os.PathLike,
    spec: str | Mapping | None = None,
    device: str | torch.device = "cpu",
) -> tuple[Generator, dict[str, Any]]:
    """An inference-ready generator (weight norm removed, eval mode) and the file's metadata."""
    data = read_generator_file(path)
    config = generator_config_for(path, data, spec)
    model = Generator.from_config(config).remove_weight_norm()
    load_generator_weights(model, data["generator"], path, "the generator")
    model.eval().to(device)
    meta = {key: value for key, value in data.items() if key != "generator"}
    meta["config"] = config
    return model, meta


def export_generator(
    model: Generator, path: str | os.PathLike, meta: Mapping[str, Any] | None = None
) -> None:
    """Write an inference generator: weight norm folded, config and mel settings included."""
    clone = Generator.from_config(model.config)
    clone.load_state_dict(model.state_dict())
    clone.remove_weight_norm()
    state = {key: value.detach().cpu().clone() for key, value in clone.state_dict().items()}
    save_atomic(
        path,
        {
            "format": FORMAT,
            "generator": state,
            "config": dict(model.config),
            "mel": {
                "sample_rate": melfe.SAMPLE_RATE, "n_fft": melfe.N_FFT, "hop": melfe.HOP,
                "win": melfe.WIN, "n_mels": melfe.N_MELS, "fmin": melfe.FMIN, "fmax": melfe.FMAX,
            },
            **dict(meta or {}),
        },
    )
