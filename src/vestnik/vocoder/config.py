"""Vocoder experiment blocks: defaults, resolution and the keys that define a run's identity.

An experiment block in `vocoder.experiments.<name>` overrides any of `DEFAULTS`. The defaults
are the RUSLAN recipe (batch 4 x 2 accumulation steps, segment 8192, AdamW 2e-4 with betas
(0.8, 0.99) and weight decay 0.01, lambda_fm 2, lambda_mel 45, gradient clip 1.0, lr decay
0.999 per epoch) on the official V1 generator and full-size discriminators.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from vestnik.errors import VestnikError

DEFAULTS: dict[str, Any] = {
    "generator": "v1",
    "discriminator_width": 1.0,
    "periods": [2, 3, 5, 7, 11],
    "batch_size": 4,
    "accumulation": 2,
    "segment": 8192,
    "lr_generator": 2e-4,
    "lr_discriminator": 2e-4,
    "betas": [0.8, 0.99],
    "weight_decay": 0.01,
    "lr_decay": 0.999,
    "lambda_fm": 2.0,
    "lambda_mel": 45.0,
    "grad_clip": 1.0,
    "loss_fmax": None,
    "seed": 1234,
    "bf16": True,
    "init_from": None,
    "steps": 100000,
    "log_interval": 50,
    "val_interval": 1000,
    "sample_interval": 5000,
    "checkpoint_interval": 1000,
    "keep_last": 3,
    "val_items": 32,
    "samples": 3,
    "export": "best",
    "device": "auto",
}
"""Every experiment key with its default; a block may override any of them."""

RUN_ONLY_KEYS = (
    "steps", "log_interval", "val_interval", "sample_interval", "checkpoint_interval",
    "keep_last", "val_items", "samples", "export", "device",
)
"""Keys that do not change the weights a run produces: changing them resumes, not restarts."""


def resolve_generator(spec: str | Mapping[str, Any]) -> dict[str, Any]:
    """`v1`/`v2`/`v3`, or a mapping of generator settings (optionally `base: v3` + overrides)."""
    from vestnik.vocoder.models import GENERATOR_CONFIGS, GENERATOR_KEYS

    if isinstance(spec, str):
        if spec.lower() not in GENERATOR_CONFIGS:
            raise VestnikError(
                f"unknown generator '{spec}' (known: {', '.join(GENERATOR_CONFIGS)})"
            )
        return copy.deepcopy(GENERATOR_CONFIGS[spec.lower()])
    spec = dict(spec)
    base = spec.pop("base", None)
    config = resolve_generator(base) if base else {}
    unknown = sorted(set(spec) - set(GENERATOR_KEYS))
    if unknown:
        raise VestnikError(f"unknown generator settings: {', '.join(unknown)}")
    config.update(copy.deepcopy(spec))
    missing = [key for key in GENERATOR_KEYS if key not in config]
    if missing:
        raise VestnikError(f"generator settings missing: {', '.join(missing)}")
    hop = 1
    for rate in config["upsample_rates"]:
        hop *= rate
    if hop != 256:
        raise VestnikError(f"upsample_rates multiply to {hop}; the mel hop is 256")
    return config


def resolve_experiment(name: str, block: Mapping[str, Any] | None) -> dict[str, Any]:
    """Defaults overlaid with `block`, the generator spelled out; unknown keys are refused."""
    block = dict(block or {})
    unknown = sorted(set(block) - set(DEFAULTS))
    if unknown:
        raise VestnikError(f"vocoder experiment '{name}': unknown keys {', '.join(unknown)}")
    config = copy.deepcopy(DEFAULTS)
    config.update(copy.deepcopy(block))
    try:
        config["generator"] = resolve_generator(config["generator"])
    except VestnikError as exc:
        raise VestnikError(f"vocoder experiment '{name}': {exc}") from exc
    if config["segment"] % 256:
        raise VestnikError(f"vocoder experiment '{name}': segment must be a multiple of 256")
    if config["export"] not in ("best", "last"):
        raise VestnikError(f"vocoder experiment '{name}': export must be 'best' or 'last'")
    return config
