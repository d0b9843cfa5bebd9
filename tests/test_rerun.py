"""What a settings change reruns: each rule's params carry only what its step reads.

One real run of two short jobs, then dry runs (`snakemake -n`) after each change.
"""

from __future__ import annotations

import copy
import os
import re
import subprocess

import pytest
import yaml

from .workflow_helpers import ROOT, SNAKEMAKE, base_config, run_workflow

pytestmark = pytest.mark.slow


def planned(workdir, config) -> set[tuple[str, str]]:
    """(rule, job wildcard or "") of every job a dry run with `config` would run."""
    (workdir / "config" / "config.yaml").write_text(
        yaml.safe_dump(config, allow_unicode=True), encoding="utf-8"
    )
    proc = subprocess.run(
        [str(SNAKEMAKE), "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
         "--cores", "1", "--dry-run"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = set()
    for block in re.split(r"\n(?=(?:localrule|rule|checkpoint) \w+:)", proc.stdout):
        match = re.match(r"(?:localrule|rule|checkpoint) (\w+):", block)
        if match:
            wildcards = re.search(r"wildcards: .*?\bjob=([^,\s]+)", block)
            jobs.add((match.group(1), wildcards.group(1) if wildcards else ""))
    return jobs


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("rerun")
    config = base_config({"a": {"text": "Привет, мир."}, "b": {"text": "Добрый день."}})
    result = run_workflow(workdir, config)
    assert result.returncode == 0, result.stderr[-3000:]
    assert planned(workdir, config) == set()
    return workdir, config


def rules_of(jobs: set[tuple[str, str]]) -> set[str]:
    return {rule for rule, _ in jobs}


def test_a_lipsync_setting_reruns_only_that_jobs_renders_merge_and_stats(built):
    workdir, config = built
    changed = copy.deepcopy(config)
    changed["jobs"]["a"]["lipsync"] = {"procedural": {"max_open": 0.3}}
    jobs = planned(workdir, changed)
    assert rules_of(jobs) == {"lipsync", "merge", "run_report", "all"}  # merge writes stats
    assert {job for _, job in jobs} == {"a", ""}


def test_a_tts_setting_reruns_from_tts_on(built):
    workdir, config = built
    changed = copy.deepcopy(config)
    changed["defaults"]["tts"]["espeak"] = {"rate": 200}
    jobs = planned(workdir, changed)
    assert {("tts", "a"), ("tts", "b"), ("plan_chunks", "a"), ("merge", "b")} <= jobs


def test_gpu_settings_rerun_nothing_built(built):
    workdir, config = built
    changed = copy.deepcopy(config)
    changed["gpu"] = {"devices": [0], "slots_per_device": 1, "wait_seconds": 5, "require": False}
    assert planned(workdir, changed) == set()


def test_a_chunk_setting_reruns_the_plan_not_tts(built):
    workdir, config = built
    changed = copy.deepcopy(config)
    changed["jobs"]["b"]["chunks"] = {"search_window": 0.2}
    jobs = planned(workdir, changed)
    assert ("plan_chunks", "b") in jobs and not {rule for rule, _ in jobs} & {"tts"}
    assert {job for _, job in jobs} == {"b", ""}
