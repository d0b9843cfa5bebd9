"""Acoustic experiment blocks: defaults, resolution and the keys that define a run's identity.

An experiment block in `acoustic.experiments.<name>` overrides any of `DEFAULTS`; its `model`
mapping overrides any of `MODEL_DEFAULTS`. The defaults are the RUSLAN recipe: a ~7M-parameter
model, batches of 32 utterances, AdamW 1e-3 with 2,000 warm-up steps and inverse-square-root
decay, 150k steps (about four hours on one recent GPU).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from vestnik.errors import VestnikError

MODEL_DEFAULTS: dict[str, Any] = {
    "hidden": 192,
    "prenet_layers": 3,
    "prenet_kernel": 5,
    "encoder_layers": 4,
    "heads": 2,
    "ffn_hidden": 768,
    "ffn_kernel": 3,
    "dropout": 0.1,
    "duration_hidden": 256,
    "duration_kernel": 3,
    "decoder_hidden": 256,
    "decoder_layers": 6,
    "decoder_kernel": 5,
    "decoder_dilations": [1, 2, 4],
    "add_blank": True,
}
"""Network shape; stored in the exported model so it loads without the config."""

DEFAULTS: dict[str, Any] = {
    "model": MODEL_DEFAULTS,
    "batch_size": 32,
    "max_frames": 1500,
    "lr": 1e-3,
    "warmup_steps": 2000,
    "betas": [0.9, 0.98],
    "weight_decay": 0.01,
    "grad_clip": 1.0,
    "duration_weight": 1.0,
    "decoder_weight": 1.0,
    "stats_items": 2000,
    "seed": 1234,
    "bf16": True,
    "steps": 150000,
    "log_interval": 50,
    "val_interval": 2000,
    "checkpoint_interval": 2000,
    "keep_last": 3,
    "val_items": 32,
    "plots": 3,
    "export": "best",
    "device": "auto",
}
"""Every experiment key with its default; a block may override any of them."""

RUN_ONLY_KEYS = (
    "steps", "log_interval", "val_interval", "checkpoint_interval", "keep_last", "val_items",
    "plots", "export", "device",
)
"""Keys that do not change the weights a run produces: changing them resumes, not restarts."""


def resolve_experiment(name: str, block: Mapping[str, Any] | None) -> dict[str, Any]:
    """Defaults overlaid with `block` (and its `model` mapping); unknown keys are refused."""
    block = dict(block or {})
    unknown = sorted(set(block) - set(DEFAULTS))
    if unknown:
        raise VestnikError(f"acoustic experiment '{name}': unknown keys {', '.join(unknown)}")
    model = dict(block.pop("model", None) or {})
    unknown = sorted(set(model) - set(MODEL_DEFAULTS))
    if unknown:
        raise VestnikError(
            f"acoustic experiment '{name}': unknown model keys {', '.join(unknown)}"
        )
    config = copy.deepcopy(DEFAULTS)
    config.update(copy.deepcopy(block))
    config["model"] = {**copy.deepcopy(MODEL_DEFAULTS), **copy.deepcopy(model)}
    if config["model"]["hidden"] % config["model"]["heads"]:
        raise VestnikError(f"acoustic experiment '{name}': hidden must be a multiple of heads")
    if config["export"] not in ("best", "last"):
        raise VestnikError(f"acoustic experiment '{name}': export must be 'best' or 'last'")
    return config
