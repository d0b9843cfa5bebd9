"""Shared by the test modules: running the real workflow on a small config in a temporary
folder, a run whose process tree can be killed, and texts several modules speak."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from vestnik.config import load_config

ROOT = Path(__file__).resolve().parents[1]
AVATAR = ROOT / "resources" / "avatar.png"
SNAKEMAKE = Path(sys.executable).with_name("snakemake")

CASPIAN = (
    "В настоящее время реализуется проект строительства волоконно-оптической линии по дну "
    "Каспийского моря между Актау и Сумгаитом. Участники от Казахстана оператор Казахтелеком, "
    "от Азербайджана - Азертелеком. Протяжённость кабеля составляет 380 километров. Стоимость "
    "проекта составляет 44 миллиона долларов США. Завершение проекта ожидается в октябре "
    "2026 года."
)
"""The first default job's text: five sentences with numbers and abbreviations."""


def base_config(jobs: dict, **defaults) -> dict:
    """The repo's default config (every default filled in from the schema) with other jobs,
    and optional overrides of `defaults`."""
    config = load_config(ROOT / "config" / "config.yaml")
    config["defaults"]["avatar"] = str(AVATAR)
    for key, value in defaults.items():
        config["defaults"][key] = {**config["defaults"].get(key, {}), **value}
    config["jobs"] = jobs
    return config


def run_workflow(
    workdir: Path, config: dict, *targets: str, cores: int = 2, extra: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    """Write `config` into `workdir` and run snakemake there with the repo's Snakefile."""
    (workdir / "config").mkdir(parents=True, exist_ok=True)
    (workdir / "config" / "config.yaml").write_text(
        yaml.safe_dump(config, allow_unicode=True), encoding="utf-8"
    )
    args = [
        str(SNAKEMAKE),
        "--snakefile", str(ROOT / "Snakefile"),
        "--directory", str(workdir),
        "--profile", str(ROOT / "profiles" / "default"),
        "--cores", str(cores),
        *extra,
        *targets,
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=1200)


# ------------------------------------------------------------------------------------------------
# A snakemake run whose whole process tree can be killed at a chosen moment.


def _proc_table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, session id) of every live (not zombie) process, from /proc."""
    table = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] not in ("Z", "X"):
            table[int(stat.parent.name)] = (int(fields[1]), int(fields[3]))
    return table


def process_tree(pid: int) -> set[int]:
    """`pid`, its descendants, and every process of its session."""
    table = _proc_table()
    tree, todo = {pid}, [pid]
    while todo:
        parent = todo.pop()
        for child, (ppid, _) in table.items():
            if ppid == parent and child not in tree:
                tree.add(child)
                todo.append(child)
    return tree | {p for p, (_, session) in table.items() if session == pid}


class Run:
    """snakemake in its own session, output to a file (a pipe could fill up and stall it)."""

    def __init__(self, workdir: Path, config: dict, *targets: str, env: dict | None = None,
                 extra: tuple[str, ...] = ()):
        (workdir / "config").mkdir(parents=True, exist_ok=True)
        (workdir / "config" / "config.yaml").write_text(
            json.dumps(config, ensure_ascii=False), encoding="utf-8"
        )
        self.workdir = workdir
        self.output = tempfile.TemporaryFile()  # noqa: SIM115 (read back after the run)
        args = [
            str(SNAKEMAKE), "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
            "--profile", str(ROOT / "profiles" / "default"), "--cores", "2", "--nocolor",
            *extra, *targets,
        ]
        environment = {**os.environ, "PYTHONPATH": str(ROOT / "src"), **(env or {})}
        self.proc = subprocess.Popen(
            args, stdout=self.output, stderr=subprocess.STDOUT, env=environment,
            start_new_session=True,
        )

    def text(self) -> str:
        self.output.seek(0)
        return self.output.read().decode("utf-8", "replace")

    def wait_for(self, condition, what: str, timeout: float = 240) -> None:
        """Poll `condition()` every 20 ms; fail if the run ends first or time runs out."""
        deadline = time.monotonic() + timeout
        while not condition():
            assert self.proc.poll() is None, f"run ended before {what}:\n{self.text()[-3000:]}"
            assert time.monotonic() < deadline, f"no {what} after {timeout} s"
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL the whole tree (snakemake, job scripts, ffmpeg) until nothing is left."""
        for _ in range(50):
            alive = process_tree(self.proc.pid) - {os.getpid()}
            alive = {p for p in alive if p != self.proc.pid or self.proc.poll() is None}
            if not alive:
                break
            for pid in sorted(alive):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
            self.proc.poll()
        self.proc.wait(timeout=30)
        assert process_tree(self.proc.pid) <= {self.proc.pid}

    def finish(self, timeout: float = 600) -> int:
        return self.proc.wait(timeout=timeout)


def temp_files(folder: Path) -> list[Path]:
    """Temporary files of atomic writes anywhere under `folder`."""
    return [p for p in folder.rglob(".*.tmp*") if p.is_file()]


def planned_jobs(text: str, wildcard: str = "job") -> set[str]:
    """The `{wildcard}` values of the jobs a snakemake (dry) run lists."""
    return set(re.findall(rf"wildcards: (?:.*, )?{wildcard}=([^\s,]+)", text))


def rule_blocks() -> dict[str, str]:
    """Every rule and checkpoint of the workflow with the text of its block."""
    blocks = {}
    for path in [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]:
        text = path.read_text(encoding="utf-8")
        for block in re.split(r"^(?=(?:rule|checkpoint) \w+:)", text, flags=re.M):
            match = re.match(r"(?:rule|checkpoint) (\w+):", block)
            if match:
                blocks[match.group(1)] = block
    return blocks


def small_vocoder(**overrides) -> dict:
    """A HiFi-GAN experiment block small enough for a test: a narrow V3 generator, 1/16-width
    discriminators, 2048-sample segments, batches of one without accumulation."""
    return {
        "generator": {"base": "v3", "upsample_initial_channel": 16},
        "discriminator_width": 0.0625,
        "segment": 2048,
        "batch_size": 1,
        "accumulation": 1,
        **overrides,
    }
