"""Vocoder experiment blocks: resolution and the keys that define a run's identity.

An experiment block in `vocoder.experiments.<name>` overrides any recipe default; the defaults
and ranges are the schema's `vocoder_experiment` (the RUSLAN recipe on the official V1
generator and full-size discriminators).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from vestnik.config import experiment_settings
from vestnik.errors import VestnikError

RUN_ONLY_KEYS = (
    "steps", "log_interval", "val_interval", "sample_interval", "checkpoint_interval",
    "keep_last", "val_items", "samples", "export", "device", "world_size",
    "tf32", "compile", "workers",
)
"""Keys that do not change the weights a run produces (TF32 and compilation change only their
rounding, as the device does; the loader workers not even that): changing them resumes, not
restarts."""

BEST_METRIC = "val_mel_l1"
"""The validation metric (lower is better) that picks the best checkpoint, the exported model
and the best step the experiment report names."""

SAMPLES = "samples"
"""Folder of an experiment that holds, per validation step, its validation audio and mel plots."""


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
    """Recipe defaults overlaid with `block`, the generator spelled out; unknown keys refused."""
    what = f"vocoder experiment '{name}'"
    config = experiment_settings("vocoder_experiment", block, what)
    try:
        config["generator"] = resolve_generator(config["generator"])
    except VestnikError as exc:
        raise VestnikError(f"{what}: {exc}") from exc
    return config
