"""Acoustic experiment blocks: resolution and the keys that define a run's identity.

An experiment block in `acoustic.experiments.<name>` overrides any recipe default; its `model`
mapping overrides the network shape. The defaults and ranges are the schema's
`acoustic_experiment`: the RUSLAN recipe, a ~7M-parameter model, batches of 32 utterances,
AdamW 1e-3 with 2,000 warm-up steps and inverse-square-root decay, 150k steps (about four hours
on one recent GPU).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vestnik.config import experiment_settings
from vestnik.errors import VestnikError

RUN_ONLY_KEYS = (
    "steps", "log_interval", "val_interval", "checkpoint_interval", "keep_last", "val_items",
    "plots", "export", "device", "world_size",
    "tf32", "compile", "workers",
)
"""Keys that do not change the weights a run produces (TF32 and compilation change only their
rounding, as the device does; the loader workers not even that): changing them resumes, not
restarts."""

BEST_METRIC = "val_mel_l1"
"""The validation metric (lower is better) that picks the best checkpoint, the exported model
and the best step the experiment report names. Not val_loss: its scale moves with the loss
weights and mel statistics, so it cannot compare experiments."""

SAMPLES = "plots"
"""Folder of an experiment that holds, per validation step, its alignment and mel plots."""


def model_defaults() -> dict[str, Any]:
    """The default network shape (also used for models exported before a key existed)."""
    return experiment_settings("acoustic_experiment", {}, "acoustic defaults")["model"]


def resolve_experiment(name: str, block: Mapping[str, Any] | None) -> dict[str, Any]:
    """Recipe defaults overlaid with `block` (and its `model` mapping); unknown keys are refused."""
    what = f"acoustic experiment '{name}'"
    config = experiment_settings("acoustic_experiment", block, what)
    if config["model"]["hidden"] % config["model"]["heads"]:
        raise VestnikError(f"{what}: hidden must be a multiple of heads")
    return config
