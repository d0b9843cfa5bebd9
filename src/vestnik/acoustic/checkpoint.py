"""Exported acoustic models: one file holding weights, network shape, symbol table and mel settings.

A model is only meaningful with the exact symbol table its embedding rows were trained on and
the exact mel front end its outputs live in, so both are stored and checked on load: a model
from another table version, or one whose mels differ from the vocoder's, is refused instead of
producing noise. Files are read with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from vestnik import mel as melfe
from vestnik.acoustic import symbols
from vestnik.acoustic.config import model_defaults
from vestnik.acoustic.model import AcousticModel
from vestnik.errors import VestnikError
from vestnik.training import read_torch_file, save_atomic

FORMAT = "vestnik-acoustic-1"
MEL_KEYS = ("sample_rate", "n_fft", "hop", "win", "n_mels", "fmin", "fmax")


def mel_settings() -> dict[str, Any]:
    """The mel front end of this code (vestnik.mel), as stored in model files."""
    return {
        "sample_rate": melfe.SAMPLE_RATE, "n_fft": melfe.N_FFT, "hop": melfe.HOP,
        "win": melfe.WIN, "n_mels": melfe.N_MELS, "fmin": melfe.FMIN, "fmax": melfe.FMAX,
    }


def mel_differences(ours: Mapping[str, Any], theirs: Mapping[str, Any]) -> list[str]:
    """'key: a vs b' for each mel setting that differs (numbers compared as floats)."""
    problems = []
    for key in MEL_KEYS:
        a, b = ours.get(key), theirs.get(key)
        same = a == b or (a is not None and b is not None and float(a) == float(b))
        if not same:
            problems.append(f"{key} {a} vs {b}")
    return problems


def export_model(model: AcousticModel, path: str | os.PathLike,
                 meta: Mapping[str, Any] | None = None) -> None:
    """Write an inference model file (weights in float32 on the CPU)."""
    state = {key: value.detach().cpu().clone() for key, value in model.state_dict().items()}
    save_atomic(path, {
        "format": FORMAT,
        "model": state,
        "config": dict(model.config),
        "symbols": symbols.table_record(),
        "mel": mel_settings(),
        **dict(meta or {}),
    })


def load_acoustic(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[AcousticModel, dict[str, Any]]:
    """An eval-mode model and the file's metadata; refuses other tables or mel settings."""
    path = Path(path)
    data = read_torch_file(path, "acoustic model")
    if not isinstance(data, Mapping) or data.get("format") != FORMAT:
        raise VestnikError(f"not an acoustic model file (expected format {FORMAT})", path=path)
    table = data.get("symbols") or {}
    if table != symbols.table_record():
        raise VestnikError(
            f"the model was trained on symbol table {table.get('version')!r} "
            f"({len(table.get('symbols', []))} symbols), this code uses {symbols.VERSION!r} "
            f"({len(symbols.SYMBOLS)} symbols); retrain it or use the matching code",
            path=path,
        )
    problems = mel_differences(data.get("mel") or {}, mel_settings())
    if problems:
        raise VestnikError(
            "the model's mel settings differ from this code's front end (vestnik.mel): "
            + "; ".join(problems), path=path,
        )
    config = {**model_defaults(), **dict(data["config"])}
    model = AcousticModel(len(symbols.SYMBOLS), config)
    try:
        model.load_state_dict(data["model"])
    except RuntimeError as exc:
        raise VestnikError(f"weights do not fit the stored network shape ({exc})",
                           path=path) from exc
    model.eval().to(device)
    meta = {key: value for key, value in data.items() if key != "model"}
    return model, meta
