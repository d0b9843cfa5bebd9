"""The one configuration: loading, schema checks, and per-job settings (defaults + overrides)."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import jsonschema
import yaml

from vestnik.errors import VestnikError

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = ROOT / "config" / "schema.yaml"
INPUT_KEYS = ("text", "text_file", "audio")


def load_schema() -> dict:
    return yaml.safe_load(SCHEMA_PATH.read_text(encoding="utf-8"))


def _check(instance: object, schema: dict, what: str, job: str | None = None) -> None:
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [
            f"  at {'/'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message}"
            for e in errors[:10]
        ]
        raise VestnikError(f"{what} does not fit the schema:\n" + "\n".join(lines), job=job)


def read_yaml(path: str | os.PathLike) -> object:
    """Parse a YAML file; a syntax error becomes one VestnikError naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise VestnikError("config file not found", path=path)
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise VestnikError(f"config file is not valid UTF-8 ({exc.reason})", path=path) from None
    except OSError as exc:
        raise VestnikError(f"cannot read the config file: {exc.strerror}", path=path) from None
    except yaml.YAMLError as exc:
        raise VestnikError(f"not valid YAML: {yaml_problem(exc)}", path=path) from None


def yaml_problem(exc: yaml.YAMLError) -> str:
    """'line L, column C: problem' of a YAML error (1-based, as editors count)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    text = f"{problem} ({context})" if context else problem
    return f"line {mark.line + 1}, column {mark.column + 1}: {text}" if mark else text


def load_config(path: str | os.PathLike) -> dict:
    """Read a YAML config and check its structure (per-job overrides are checked per job)."""
    config = read_yaml(path) or {}
    _check(config, load_schema(), f"config {path}")
    return config


def sort_keys(value: object) -> object:
    """A copy of `value` with every mapping's keys in sorted order.

    Snakemake compares a rule's params with the last run's as text, so a config whose keys were
    merely reordered would otherwise rerun every job.
    """
    if isinstance(value, dict):
        return {key: sort_keys(value[key]) for key in sorted(value, key=str)}
    if isinstance(value, list):
        return [sort_keys(item) for item in value]
    return value


def deep_merge(base: dict, override: dict) -> dict:
    """Return `base` updated recursively by `override` (neither is modified)."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def job_entry(config: dict, job: str) -> dict:
    try:
        return config["jobs"][job]
    except KeyError:
        known = ", ".join(sorted(config.get("jobs", {}))) or "none"
        raise VestnikError(f"no such job in the config (jobs: {known})", job=job) from None


def merged_settings(config: dict, job: str) -> dict:
    """Defaults overridden by the job's own block, not yet checked (see `job_settings`)."""
    entry = job_entry(config, job)
    overrides = {k: v for k, v in entry.items() if k not in INPUT_KEYS}
    return deep_merge(config["defaults"], overrides)


def check_settings(settings: dict, job: str) -> dict:
    """Check a job's merged settings against the schema; raises a VestnikError naming the job."""
    schema = load_schema()
    _check(settings, {**schema["$defs"]["settings"], "$defs": schema["$defs"]}, "settings", job)
    return settings


def job_settings(config: dict, job: str) -> dict:
    """Merged and checked settings of one job."""
    return check_settings(merged_settings(config, job), job)


def job_input(config: dict, job: str) -> tuple[str, str]:
    """The job's single input as (kind, value): kind is text, text_file or audio."""
    entry = job_entry(config, job)
    for key in INPUT_KEYS:
        if key in entry:
            return key, entry[key]
    raise VestnikError("a job needs one of text, text_file or audio", job=job)
