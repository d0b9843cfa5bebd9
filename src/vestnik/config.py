"""The one configuration: loading, schema checks with defaults, and per-job settings.

Every setting's default, type and range lives in the package's schema.yaml (the same file as
config/schema.yaml). `validate_config` fills the defaults in, as
`snakemake.utils.validate(..., set_default=True)` does, and refuses NaN and infinity, which
JSON Schema's minimum/maximum comparisons let through. Job entries and their overrides are
checked per job (`check_job`), so one bad job fails alone.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
import os
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from vestnik.errors import VestnikError

ROOT = Path(__file__).resolve().parents[2]
"""The source checkout holding this package (the workflow's default project folder)."""
SCHEMA_PATH = Path(str(resources.files("vestnik") / "schema.yaml"))
INPUT_KEYS = ("text", "text_file", "audio")
MAX_ERRORS = 10


@functools.cache
def load_schema() -> dict:
    """The configuration schema (parsed once; do not modify the result).

    Parsed with libyaml where PyYAML has it: every process that checks settings reads the
    schema, and the pure Python parser spends about 0.2 s of CPU on it.
    """
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(SCHEMA_PATH.read_text(encoding="utf-8"), Loader=loader)


@functools.cache
def _validator(fill: bool) -> type:
    """The Draft 2020-12 validator; with `fill`, one that also inserts each property's `default`
    (a deep copy). jsonschema is imported here, not with this module: the job processes that
    never check a block (the merge) do not pay for it."""
    import jsonschema

    base = jsonschema.Draft202012Validator
    if not fill:
        return base
    validate_properties = base.VALIDATORS["properties"]

    def properties(validator, props, instance, schema):
        if validator.is_type(instance, "object"):
            for name, sub in props.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, props, instance, schema)

    return jsonschema.validators.extend(base, {"properties": properties})


def _non_finite(value: object, path: tuple = ()) -> Iterator[tuple]:
    """Paths of every NaN or infinite number inside `value`."""
    if isinstance(value, float) and not math.isfinite(value):
        yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _non_finite(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _non_finite(item, (*path, index))


def _where(path) -> str:
    return "/".join(str(p) for p in path) or "(top)"


def _message(error: Any, block: str | None) -> str:
    """The error in words; an unknown key lists the known ones of its block."""
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(known))
        owner = str(error.absolute_path[-1]) if error.absolute_path else block
        return f"unknown {owner + ' ' if owner else ''}setting(s) {unknown}; known: {known}"
    return error.message


def check_schema(
    instance: object,
    schema: dict,
    what: str,
    job: str | None = None,
    fill: bool = True,
    block: str | None = None,
    skip: str | None = None,
) -> object:
    """Check `instance` against `schema` (defaults filled in when `fill`); return it.

    `block` names the instance's own block (an engine's name) in messages about unknown keys;
    numbers under the top-level key `skip` are left to a later check (the jobs, one by one).
    Raises one VestnikError listing up to ten problems, each with its place in the config.
    """
    lines = [
        f"  at {_where(p)}: NaN and infinity are not allowed"
        for p in _non_finite(instance)
        if not (skip and p[:1] == (skip,))
    ]
    if not lines:
        validator = _validator(fill)(schema)
        errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
        lines = [f"  at {_where(e.absolute_path)}: {_message(e, block)}" for e in errors]
    if lines:
        more = len(lines) - MAX_ERRORS
        tail = [f"  ... and {more} more"] if more > 0 else []
        body = "\n".join(lines[:MAX_ERRORS] + tail)
        raise VestnikError(f"{what} does not fit the schema:\n{body}", job=job)
    return instance


def _definition(name: str) -> dict:
    schema = load_schema()
    return {**schema["$defs"][name], "$defs": schema["$defs"]}


def validate_config(config: dict, what: str = "config") -> dict:
    """Check a whole config's structure and fill in every default (in place); return it.

    Job entries are only checked to be mappings here; `check_job` checks each one.
    """
    return check_schema(config, load_schema(), what, skip="jobs")


def read_yaml(path: str | os.PathLike) -> object:
    """Parse a YAML file; a syntax error becomes one VestnikError naming the file and line."""
    import yaml

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


def yaml_problem(exc: Exception) -> str:
    """'line L, column C: problem' of a YAML error (1-based, as editors count)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    text = f"{problem} ({context})" if context else problem
    return f"line {mark.line + 1}, column {mark.column + 1}: {text}" if mark else text


def load_config(path: str | os.PathLike) -> dict:
    """Read a YAML config, check its structure and fill in the defaults."""
    config = read_yaml(path) or {}
    return validate_config(config, f"config {path}")


def load_configs(*paths: str | os.PathLike) -> dict:
    """The config Snakemake sees with `--configfile A B ...`: each file merged over the one
    before key by key (config/config.yaml first, as the Snakefile reads it), checked and filled."""
    merged: dict = {}
    for path in paths:
        merged = deep_merge(merged, read_yaml(path) or {})
    return validate_config(merged, "config " + " + ".join(str(p) for p in paths))


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
        entry = config["jobs"][job]
    except KeyError:
        known = ", ".join(sorted(config.get("jobs", {}))) or "none"
        raise VestnikError(f"no such job in the config (jobs: {known})", job=job) from None
    if not isinstance(entry, dict):
        raise VestnikError("a job's entry must be a mapping (text:, avatar:, ...)", job=job)
    return entry


def merged_settings(config: dict, job: str) -> dict:
    """Defaults overridden by the job's own block, not yet checked (see `check_job`)."""
    entry = job_entry(config, job)
    overrides = {k: v for k, v in entry.items() if k not in INPUT_KEYS}
    return deep_merge(config.get("defaults") or {}, overrides)


def check_settings(settings: dict, job: str) -> dict:
    """Check a job's merged settings (defaults filled in); raises a VestnikError naming the job.

    Inside `assume_checked_blocks` the settings are the workflow's checked ones: a copy."""
    if _BLOCKS_CHECKED:
        return copy.deepcopy(settings)
    return _checked_settings(settings, job)


def _checked_settings(settings: dict, job: str) -> dict:
    return check_schema(settings, _definition("settings"), "settings", job)


def check_job(config: dict, job: str) -> dict:
    """Check one job's entry and its merged settings; return the settings, defaults filled in.

    A recording with a transcript is re-voiced by the neural voice, so it needs
    `tts.engine: neural`; a recording without one cannot be (no speech recogniser ships).
    """
    entry = job_entry(config, job)
    check_schema(entry, _definition("job"), "job entry", job, fill=False)
    settings = _checked_settings(merged_settings(config, job), job)
    if "audio" in entry:
        engine = settings["tts"]["engine"]
        transcript = job_transcript(config, job)
        if transcript and engine != "neural":
            raise VestnikError(
                f"a transcript ({transcript[0]}) beside `audio` re-voices the recording, which "
                f"needs tts.engine neural (this job's engine is {engine}); drop the transcript "
                "to use the recording as it is", job=job)
        if not transcript and engine == "neural":
            raise VestnikError(
                "re-voicing a recording with the neural voice needs its transcript: give "
                "`text` or `text_file` beside `audio` (no speech recogniser ships with "
                "Vestnik), or set tts.engine espeak to use the recording as it is", job=job)
    return settings


def job_input(config: dict, job: str) -> tuple[str, str]:
    """The job's speech input as (kind, value): kind is text, text_file or audio (a recording
    with a transcript is its audio; `job_transcript` gives the transcript)."""
    entry = job_entry(config, job)
    if "audio" in entry:
        return "audio", entry["audio"]
    for key in INPUT_KEYS:
        if key in entry:
            return key, entry[key]
    raise VestnikError("a job needs one of text, text_file or audio", job=job)


def job_transcript(config: dict, job: str) -> tuple[str, str] | None:
    """(text or text_file, value) of a recording's transcript: the job re-voices its `audio`;
    None for a job without a recording or without a transcript."""
    entry = job_entry(config, job)
    if "audio" not in entry:
        return None
    for key in ("text", "text_file"):
        if key in entry:
            return key, entry[key]
    return None


def block_schema(where: str) -> dict:
    """The schema of one settings block: "chunks", "lipsync.procedural", or top-level "gpu"."""
    schema = load_schema()
    first, *rest = where.split(".")
    if first in schema["properties"] and first != "defaults":
        node = schema["properties"][first]
    else:
        node = schema["$defs"]["settings"]["properties"][first]
    for key in rest:
        node = node["properties"][key]
    return node


_BLOCKS_CHECKED = False
"""True while a step that opted in runs (`run_step(..., blocks_checked=True)`): see
`assume_checked_blocks`."""


@contextlib.contextmanager
def assume_checked_blocks() -> Iterator[None]:
    """While inside, `block_settings` and `check_settings` return their settings unchecked.

    The speech, chunk plan and chunk render steps take every block from their rule's params,
    checked (defaults filled in) by the workflow before the job ran, and a job whose settings do
    not fit never gets past its tts step; checking them again would cost each job process the
    jsonschema import and the schema parse (about 0.1 s of CPU), a tenth of a short job's work.
    `check_job` still checks in full.
    """
    global _BLOCKS_CHECKED
    before, _BLOCKS_CHECKED = _BLOCKS_CHECKED, True
    try:
        yield
    finally:
        _BLOCKS_CHECKED = before


def block_settings(where: str, block: dict | None, job: str | None = None) -> dict:
    """A copy of one settings block checked against its schema, defaults filled in.

    Code that takes a block (an engine, the chunk planner, the device slots) calls this on
    what it is given, so a block built by hand (a test, a benchmark) gets the same defaults
    and range checks as one read from a config (except inside `assume_checked_blocks`).
    """
    settings = copy.deepcopy(dict(block or {}))
    if _BLOCKS_CHECKED:
        return settings
    name = where.rsplit(".", 1)[-1]
    return check_schema(settings, block_schema(where), f"{where} settings", job, block=name)


def experiment_settings(definition: str, block: dict | None, what: str) -> dict:
    """A training experiment block (`vocoder_experiment`, `acoustic_experiment`) checked
    against its schema definition, the recipe defaults filled in."""
    block = copy.deepcopy(dict(block or {}))
    unknown = sorted(set(block) - set(load_schema()["$defs"][definition]["properties"]))
    if unknown:
        raise VestnikError(f"{what}: unknown keys {', '.join(unknown)}")
    return check_schema(block, _definition(definition), what)


def engine_settings(kind: str, name: str, block: dict | None, job: str | None = None) -> dict:
    """One engine's settings block, checked and with its defaults (see `block_settings`)."""
    return block_settings(f"{kind}.{name}", block, job)


def _chosen_engine(settings: dict, kind: str) -> dict:
    """{"engine": name, name: block}: the engine a job uses and only that engine's settings."""
    from vestnik import engines

    spec, block = engines.chosen(settings, kind)
    return {"engine": spec.name, spec.name: block}


STEPS = {
    "tts": lambda s: {"tts": _chosen_engine(s, "tts")},
    "revoice": lambda s: {"tts": _chosen_engine(s, "tts"), "revoice": s["revoice"]},
    "plan": lambda s: {"chunks": s["chunks"]},
    "lipsync": lambda s: {
        "avatar": s["avatar"],
        "lipsync": {**_chosen_engine(s, "lipsync"), "landmarks": s["lipsync"]["landmarks"]},
    },
}
"""What each job step reads from the job's settings (its rule's params)."""


def step_settings(settings: dict, step: str) -> dict:
    """The part of a job's checked settings that `step` reads.

    Snakemake reruns a step when its params change, so each rule passes only this part: a
    lip-sync setting reruns the chunk renders (and what follows), never TTS or the chunk plan.
    """
    return STEPS[step](settings)
