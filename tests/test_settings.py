"""The schema is the one source of settings: defaults, ranges, engines, per-job checks."""

from __future__ import annotations

import inspect
import math
import os
import re
import subprocess
import sys
import zipfile

import pytest
import yaml

from vestnik import engines
from vestnik.config import (
    SCHEMA_PATH,
    check_job,
    engine_settings,
    load_config,
    load_schema,
    validate_config,
)
from vestnik.errors import VestnikError

from .workflow_helpers import ROOT, SNAKEMAKE, base_config, rule_blocks


def engine_schema(kind: str, name: str) -> dict:
    return load_schema()["$defs"]["settings"]["properties"][kind]["properties"][name]


def documented_settings(cls) -> set[str]:
    """Setting names listed in the `Settings` section of an engine class's docstring."""
    doc = inspect.getdoc(cls)
    section = doc.split("Settings", 1)[1].split("\n\n", 1)[0]
    names = re.findall(r"^  (\w+(?:, \w+)*)\s", section, re.M)  # "attack, release  ..."
    return {name for group in names for name in group.split(", ")}


def test_the_schema_is_the_package_file_and_config_schema_yaml():
    assert SCHEMA_PATH.parent.name == "vestnik"
    assert SCHEMA_PATH.read_bytes() == (ROOT / "config" / "schema.yaml").read_bytes()


def test_every_default_fits_its_own_schema():
    config = validate_config({"jobs": {}})
    assert config["fps"] == 25 and config["gpu"]["slots_per_device"] == 3
    assert config["defaults"]["tts"]["espeak"] == {
        "voice": "ru", "rate": 165, "pitch": 50, "volume": 100, "max_chars": 300,
        "sentence_pause": 0.35,
    }
    assert config["defaults"]["limits"] == {"max_text_chars": 50000, "max_speech_seconds": 3600}
    for kind in engines.KINDS:
        for name in engines.names(kind):
            assert engine_settings(kind, name, {}) == config["defaults"][kind][name]


def test_defaults_are_filled_without_sharing_objects():
    first, second = validate_config({"jobs": {}}), validate_config({"jobs": {}})
    first["defaults"]["lipsync"]["procedural"]["interior_color"][0] = 1
    assert second["defaults"]["lipsync"]["procedural"]["interior_color"][0] == 34


@pytest.mark.parametrize("kind", engines.KINDS)
def test_the_registry_and_the_schema_name_the_same_engines(kind):
    section = load_schema()["$defs"]["settings"]["properties"][kind]
    assert set(section["properties"]["engine"]["enum"]) == set(engines.names(kind))
    blocks = {key for key, sub in section["properties"].items() if sub.get("type") == "object"}
    assert blocks == set(engines.names(kind))  # other keys are shared by the kind's engines
    for name in engines.names(kind):
        assert callable(engines.engine(kind, name).load())


@pytest.mark.parametrize(("kind", "name"), [("lipsync", "procedural"), ("lipsync", "wav2lip")])
def test_lipsync_engines_document_exactly_the_schema_settings(kind, name):
    factory = engines.engine(kind, name).load()
    assert documented_settings(factory) == set(engine_schema(kind, name)["properties"])


@pytest.mark.parametrize(("kind", "name"), [("tts", "espeak"), ("tts", "neural")])
def test_tts_engines_take_exactly_the_schema_settings(kind, name):
    parameters = inspect.signature(engines.engine(kind, name).load()).parameters
    keywords = {p.name for p in parameters.values() if p.kind is p.KEYWORD_ONLY}
    assert keywords == set(engine_schema(kind, name)["properties"])
    assert all(p.default is p.empty for p in parameters.values())  # no second copy of defaults


def test_every_documented_procedural_setting_is_settable_from_a_job():
    settings = {"upper_lip": 0.4, "attack": 0.05, "release": 0.1, "lead": 0.0, "teeth": 0.2,
                "source": "audio", "gate_db": -50, "full_db": -10, "interior_color": [1, 2, 3]}
    config = base_config({"j": {"text": "Привет.", "lipsync": {"procedural": settings}}})
    checked = check_job(validate_config(config), "j")
    assert checked["lipsync"]["procedural"].items() >= settings.items()


def test_the_procedural_lead_bound_is_the_context_the_chunks_allow_for():
    from vestnik.lipsync.visemes import MAX_LEAD

    lead = engine_schema("lipsync", "procedural")["properties"]["lead"]
    assert lead["maximum"] == MAX_LEAD == -lead["minimum"]


def write(tmp_path, config: dict):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize(
    "where",
    [("chunks", "min_seconds"), ("chunks", "max_seconds"), ("chunks", "context"),
     ("chunks", "search_window"), ("tts", "espeak", "sentence_pause"),
     ("lipsync", "procedural", "max_open"), ("limits", "max_speech_seconds")],
)
def test_nan_and_infinity_are_refused_for_every_setting(tmp_path, where, bad):
    block = bad
    for key in reversed(where):
        block = {key: block}
    config = base_config({"j": {"text": "Привет.", **block}})
    with pytest.raises(VestnikError, match="NaN and infinity") as info:
        check_job(validate_config(config), "j")
    assert "job 'j'" in str(info.value) and "/".join(where) in str(info.value)
    config = base_config({"j": {"text": "Привет."}}, **block)
    with pytest.raises(VestnikError, match="NaN and infinity"):
        load_config(write(tmp_path, config))


@pytest.mark.parametrize("fps", [math.nan, math.inf, 0.01, 0, 1000])
def test_absurd_frame_rates_are_refused(tmp_path, fps):
    config = {**base_config({"j": {"text": "Привет."}}), "fps": fps}
    with pytest.raises(VestnikError, match="fps"):
        load_config(write(tmp_path, config))


def test_yaml_nan_is_refused_with_its_place(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("fps: 25\ndefaults:\n  chunks: {context: .nan}\njobs: {}\n", encoding="utf-8")
    with pytest.raises(VestnikError, match=r"defaults/chunks/context: NaN and infinity"):
        load_config(path)


def test_limits_can_be_set_per_job(tmp_path):
    config = base_config({"small": {"text": "Привет.", "limits": {"max_text_chars": 3}},
                          "big": {"text": "Привет."}})
    config = load_config(write(tmp_path, config))
    assert check_job(config, "small")["limits"]["max_text_chars"] == 3
    assert check_job(config, "big")["limits"]["max_text_chars"] == 50000


def dry_run(tmp_path, config: dict) -> subprocess.CompletedProcess:
    (tmp_path / "config").mkdir(exist_ok=True)
    write(tmp_path / "config", config)
    return subprocess.run(
        [str(SNAKEMAKE), "--snakefile", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
         "--cores", "1", "--dry-run"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )


def test_one_bad_job_does_not_stop_the_others(tmp_path):
    config = base_config({
        "good": {"text": "Привет.", "limits": {"max_text_chars": 100}},
        "typo": {"text": "Привет.", "lipsync": {"procedural": {"max_opn": 0.3}}},
        "two_inputs": {"text": "Привет.", "audio": "a.wav"},
        "nan": {"text": "Привет.", "chunks": {"context": math.nan}},
    })
    proc = dry_run(tmp_path, config)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for job in ("typo", "two_inputs", "nan"):
        assert f"job '{job}'" in proc.stderr
    assert "max_opn" in proc.stderr and "unknown procedural setting" in proc.stderr
    assert "job 'good'" not in proc.stderr
    assert "wildcards: job=good" in proc.stdout


@pytest.mark.slow
def test_a_built_wheel_carries_the_schema(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True, timeout=600,
    )
    (wheel,) = tmp_path.glob("vestnik-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert archive.read("vestnik/schema.yaml") == (ROOT / "config" / "schema.yaml").read_bytes()
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site),
         str(wheel)],
        check=True, capture_output=True, timeout=600,
    )
    (tmp_path / "c.yaml").write_text("jobs: {a: {text: Привет.}}\n", encoding="utf-8")
    code = ("import vestnik.config as c; cfg = c.load_config('c.yaml'); "
            "print(c.__file__, c.check_job(cfg, 'a')['tts']['espeak']['rate'])")
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(site)},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(str(site)) and proc.stdout.split()[-1] == "165"


TORCH_RULES = {"corpus_shard", "train_vocoder", "vocoder_eval", "train_acoustic", "acoustic_eval",
               "revoice_plan", "revoice_piece"}
"""Rules whose steps import torch whatever the config says (a new such rule joins the list)."""


def test_conda_environments_install_what_each_rule_needs():
    envs = ROOT / "workflow" / "envs"
    torch_env = yaml.safe_load((envs / "vestnik-torch.yaml").read_text(encoding="utf-8"))
    assert "--editable ../..[torch]" in torch_env["dependencies"][-1]["pip"]
    for rule, block in rule_blocks().items():
        if "    conda:" not in block:
            continue
        env = re.search(r"^    conda:\n\s+(.+)$", block, re.M).group(1)
        expected = "TORCH_ENV" if rule in TORCH_RULES else {
            "tts": 'engine_env("tts")', "lipsync": 'engine_env("lipsync")'}.get(rule, "LIGHT_ENV")
        assert env == expected, rule
    for kind in engines.KINDS:
        for name in engines.names(kind):
            extra = engines.engine(kind, name).extra
            if extra:
                assert (envs / f"vestnik-{extra}.yaml").is_file()
                pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
                assert re.search(rf"^{extra} = \[", pyproject, re.M), extra


def test_no_rule_passes_gpu_settings_as_params():
    """Params are rerun triggers; device slots must never make a built output stale."""
    for rule, block in rule_blocks().items():
        params = re.search(r"^    params:\n((?:        .*\n)+)", block, re.M)
        assert not params or "gpu" not in params.group(1), rule


def test_neural_tts_takes_a_device_slot_of_the_gpu_block(no_cuda):
    """With `device: auto` the neural voice speaks on a slot of `gpu:` (so `gpu.require` and
    `gpu.devices` apply to it as to Wav2Lip); an explicit device takes none."""
    from vestnik.tts import synthesize

    job = check_job(validate_config(base_config({"j": {"text": "Привет.", "tts": {
        "engine": "neural", "neural": {"acoustic": "missing/a.pt", "vocoder": "missing/v.pt"}}}})),
        "j")
    assert engines.takes_device_slot(job, "tts") and engines.takes_device_slot(
        {"lipsync": {"engine": "wav2lip", "wav2lip": {}}}, "lipsync")
    cpu = {**job["tts"], "neural": {**job["tts"]["neural"], "device": "cpu"}}
    assert not engines.takes_device_slot({"tts": cpu}, "tts")
    with pytest.raises(VestnikError, match=r"job 'j'.*gpu\.require is true but no CUDA"):
        synthesize("Привет.", job["tts"], job="j", gpu={"require": True})


def test_blocks_pass_unchecked_only_inside_a_workflow_step():
    """Inside a job's step its blocks come from the checked config; elsewhere they are checked."""
    from vestnik.config import assume_checked_blocks, block_settings

    with assume_checked_blocks():
        assert block_settings("chunks", {"workers": 0}) == {"workers": 0}
    with pytest.raises(VestnikError, match="workers"):
        block_settings("chunks", {"workers": 0})
    assert block_settings("chunks", {})["workers"] == 3
