"""The SLURM profile: its resources as Snakemake resolves them, and (opt-in) a real SLURM run.

The real run (tests/cluster/run_slurm.sh) installs Debian's slurm-wlm and munge, starts a
one-node cluster on localhost and needs root or password-less sudo; it takes about three minutes,
so it runs only with VESTNIK_SLURM_TEST=1.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from ..workflow_helpers import ROOT, SNAKEMAKE

SCRIPT = ROOT / "tests" / "cluster" / "run_slurm.sh"
SKIPPED = 77


def _dry_run(tmp_path, *extra: str) -> str:
    proc = subprocess.run(
        [str(SNAKEMAKE), "--snakefile", str(ROOT / "Snakefile"),
         "--configfile", str(ROOT / "config" / "config.yaml"),
         "--profile", str(ROOT / "profiles" / "slurm"), "--dry-run", *extra],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def _resources(output: str, rule: str) -> dict[str, str]:
    pattern = rf"^(?:rule|checkpoint) {rule}:\n(?:    .*\n)*?    resources: (.*)$"
    block = re.search(pattern, output, re.M)
    assert block, f"no {rule} job in the dry run"
    return dict(item.split("=", 1) for item in block.group(1).split(", "))


def test_slurm_profile_resources(tmp_path):
    pytest.importorskip("snakemake_executor_plugin_slurm")
    output = _dry_run(tmp_path)
    assert "workflow specific profile" in output  # profiles/default applies on top
    tts = _resources(output, "tts")
    assert (tts["slurm_partition"], tts["runtime"], tts["mem_mb"]) == ("cpu", "20", "3000")
    assert tts["cpus_per_task"] == "1"
    report = _resources(output, "run_report")  # a cluster job without overrides
    assert (report["runtime"], report["mem_mb"]) == ("30", "2000")
    override = _dry_run(tmp_path, "--set-resources", "tts:slurm_partition=short")
    assert _resources(override, "tts")["slurm_partition"] == "short"


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("VESTNIK_SLURM_TEST") != "1",
    reason="set VESTNIK_SLURM_TEST=1 to run the pipeline on a real one-node SLURM",
)
def test_pipeline_on_real_slurm():
    proc = subprocess.run(
        ["bash", str(SCRIPT)],
        capture_output=True, text=True, timeout=1800,
        env={**os.environ, "VESTNIK_PYTHON": sys.executable},
    )
    if proc.returncode == SKIPPED:
        pytest.skip(proc.stdout.strip().splitlines()[-1])
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
    assert "PASS" in proc.stdout
    assert "all COMPLETED" in proc.stdout
