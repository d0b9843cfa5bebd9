"""`vestnik status`: Snakemake's per-file summary grouped into done, stale, missing and failed."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import yaml

from vestnik import layout
from vestnik.status import Row, classify, collect_status, format_status, parse_summary

from .workflow_helpers import ROOT, SNAKEMAKE, base_config, rule_blocks, run_workflow

SUMMARY = """Building DAG of jobs...
output_file\tdate\trule\tlog-file(s)\tstatus\tplan
results/jobs/a/final.mp4\tWed Nov 25 15:04:26 2026\tmerge\tlogs/jobs/a/merge.log\tok\tno update
results/jobs/a/speech.wav\t-\ttts\t-\tmissing\tupdate pending
"""


def test_parse_summary_skips_what_comes_before_the_table():
    rows = parse_summary(SUMMARY)
    assert rows == [
        Row("results/jobs/a/final.mp4", "merge", "ok", False),
        Row("results/jobs/a/speech.wav", "tts", "missing", True),
    ]


@pytest.mark.parametrize(
    ("rows", "state", "detail"),
    [
        ([Row("f", "merge", "ok", False), Row("s", "tts", "ok", False)], "done", "2 outputs"),
        ([Row("f", "merge", "ok", True), Row("s", "tts", "params changed", True)], "stale",
         "an input will be remade (merge); params changed (tts)"),
        ([Row("f", "merge", "missing", True), Row("s", "tts", "ok", False)], "missing",
         "partly run: 1 of 2"),
        ([Row("f", "merge", "missing", True)], "missing", "not run yet"),
        ([], "missing", "not run yet"),
    ],
)
def test_classify(rows, state, detail):
    unit = classify("job", "a", rows)
    assert unit.state == state
    assert detail in unit.detail


def test_a_logged_error_makes_a_missing_job_failed(tmp_path):
    log = tmp_path / "logs" / "jobs" / "a" / "tts.log"
    log.parent.mkdir(parents=True)
    log.write_text("2026-11-25 15:00:00,000 ERROR vestnik: job 'a': the text is empty\n")
    unit = classify("job", "a", [Row("s", "tts", "missing", True)], log.parent, tmp_path)
    assert unit.state == "failed"
    assert unit.detail == "logs/jobs/a/tts.log: job 'a': the text is empty"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """One rendered job and one that fails, run once for the whole module."""
    workdir = tmp_path_factory.mktemp("status")
    config = base_config({"hi": {"text": "Привет, мир."}, "bad": {"text": "   "}})
    result = run_workflow(workdir, config)
    assert result.returncode != 0  # "bad" fails, "hi" is rendered
    assert (workdir / "results" / "jobs" / "hi" / "final.mp4").is_file(), result.stderr[-3000:]
    return workdir, config


def by_name(status):
    return {u["name"]: u for u in status["units"]}


@pytest.mark.slow
def test_done_failed_and_the_report_waiting(workdir):
    folder, _ = workdir
    units = by_name(collect_status(folder))
    assert units["hi"]["state"] == "done", units["hi"]
    assert units["bad"]["state"] == "failed"
    assert "text is empty" in units["bad"]["detail"]
    assert units["run report"]["state"] == "missing"


@pytest.mark.slow
def test_changed_config_new_jobs_and_leftovers(workdir, tmp_path):
    folder, config = workdir
    changed = yaml.safe_load(yaml.safe_dump(config))
    changed["jobs"]["hi"]["tts"] = {"espeak": {"rate": 120}}
    changed["jobs"]["later"] = {"text": "Потом."}
    del changed["jobs"]["bad"]
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(changed, allow_unicode=True), encoding="utf-8")
    (folder / "results" / "jobs" / "old").mkdir()
    status = collect_status(folder, other)
    units = by_name(status)
    assert units["hi"]["state"] == "stale"
    assert "params changed" in units["hi"]["detail"] and "tts" in units["hi"]["detail"]
    assert "results/jobs/hi/speech.wav" in units["hi"]["stale_files"]
    assert units["later"]["state"] == "missing" and units["later"]["detail"] == "not run yet"
    assert "bad" not in units
    assert status["not_in_config"] == ["results/jobs/old"]
    text = format_status(status)
    assert re.search(r"^  later +missing +not run yet$", text, re.M)
    assert "results without a config entry: results/jobs/old" in text


@pytest.mark.slow
def test_cli_json(workdir):
    folder, _ = workdir
    proc = subprocess.run(
        [str(SNAKEMAKE.with_name("vestnik")), "status", "--directory", str(folder), "--json"],
        capture_output=True, text=True, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    units = by_name(json.loads(proc.stdout))
    assert units["hi"]["state"] == "done", units["hi"]


def test_cli_reports_a_missing_config(tmp_path):
    proc = subprocess.run(
        [str(SNAKEMAKE.with_name("vestnik")), "status", "--directory", str(tmp_path)],
        capture_output=True, text=True, cwd=ROOT,
    )
    assert proc.returncode == 1
    assert "config.yaml" in proc.stderr and "not found" in proc.stderr


def test_every_rule_that_runs_code_logs_under_logs():
    blocks = rule_blocks()
    assert {"tts", "lipsync", "merge", "run_report", "train_vocoder"} <= set(blocks)
    for rule, block in blocks.items():
        if not re.search(r"^    (script|shell|run|wrapper|notebook):", block, re.M):
            continue
        log = re.search(
            r'^    log:\n\s+(?:\w+=)?(?:"([^"]+)"|(?:fill\()?layout\.(\w+))', block, re.M
        )
        path = log and (log.group(1) or getattr(layout, log.group(2)))
        assert path and path.startswith("logs/"), f"rule {rule} has no log under logs/"


@pytest.mark.slow
def test_a_rendered_job_left_one_log_per_rule(workdir):
    folder, _ = workdir
    logs = {p.name for p in (folder / "logs" / "jobs" / "hi").glob("*.log")}
    # the chunk job cuts its own audio, and the merge writes the stats: no job of their own
    assert logs == {"tts.log", "plan_chunks.log", "lipsync_0.log", "merge.log"}
    assert "INFO vestnik" in (folder / "logs" / "jobs" / "hi" / "tts.log").read_text()
