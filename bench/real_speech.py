"""Quality against CPU time for the real-speech recipe (config/real-speech.yaml, festvox-ru).

`train` runs the recipe's two trainings through Snakemake (`make demo-train-real` does the same
plus evaluation and a rendered job) and samples every `--every` seconds the CPU time each
training process has used, with the step its log reports, into a CPU log. `evaluate` then takes
every kept checkpoint of both experiments, exports it as the trainers would, scores it on the
held-out recordings (acoustic: mel L1, DTW MCD, length error, boundary error against the human
phone labels; vocoder: mel L1, MCD, PESQ, STOI) and prints one table per model: quality by CPU
minutes of that model's training process, with its steps per CPU second and per wall second.
CPU minutes rather than wall minutes: on a shared machine the wall clock measures the others.

Usage:  python bench/real_speech.py train [--kind acoustic|vocoder] [--cpu-log FILE]
                                        [--every 30] [snakemake args...]
        python bench/real_speech.py evaluate [--cpu-log FILE] [--out FILE.json] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "results" / "models"
TARGETS = {"vocoder": "results/models/vocoder/real/generator.pt",
           "acoustic": "results/models/acoustic/real/model.pt"}
_STEP_RE = re.compile(r"\|\s*(\d+)/(\d+)")


def _cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / 100.0  # utime + stime, clock ticks


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def _training_pids(root_pid: int) -> dict[str, int]:
    """The training processes started (at any depth) by the process `root_pid`, by kind: a
    training step writes logs/<kind>/<name>/train.log, which names its kind."""
    pids = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().decode(errors="replace")
            if "train_experiment.py" not in cmd:
                continue
            files = [str((proc / "fd" / fd).readlink()) for fd in os.listdir(proc / "fd")]
        except OSError:
            continue
        pid, ancestor = int(proc.name), int(proc.name)
        while ancestor > 1 and ancestor != root_pid:
            ancestor = _parent(ancestor)
        for kind in ("acoustic", "vocoder"):
            if ancestor == root_pid and any(f"/logs/{kind}/" in f for f in files):
                pids.setdefault(kind, pid)
    return pids


def _last_step(kind: str) -> str:
    log = ROOT / "logs" / kind / "real" / "train.log"
    if not log.is_file():
        return ""
    found = _STEP_RE.findall(log.read_text(errors="replace")[-2000:])
    return f"{found[-1][0]}/{found[-1][1]}" if found else ""


def train(cpu_log: Path, every: float, kinds: list[str], extra: list[str]) -> int:
    command = ["snakemake", *(TARGETS[kind] for kind in kinds), "--cores", "2",
               "--resources", "gpu=2",
               "--configfile", "config/real-speech.yaml", *extra]
    cpu_log.parent.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(command, cwd=ROOT)
    with open(cpu_log, "a", encoding="utf-8") as out:
        while process.poll() is None:
            for kind, pid in _training_pids(process.pid).items():
                cpu = _cpu_seconds(pid)
                if cpu is not None:
                    out.write(f"{int(time.time())} {kind} {pid} {cpu} {_last_step(kind)}\n")
                    out.flush()
            time.sleep(every)
    return process.returncode


def cpu_by_step(cpu_log: Path, kind: str) -> list[tuple[int, float, int]]:
    """(step, CPU seconds, wall time) samples of one training across its processes.

    A run resumed by a new process (after a kill) starts from a checkpoint with its own CPU
    clock at zero; its samples are shifted by the CPU time the earlier process had spent up to
    that step, and the earlier process's samples past it (work the kill lost) are dropped.
    """
    runs: dict[int, list[tuple[int, float, int]]] = {}
    for line in cpu_log.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) == 5 and parts[1] == kind and "/" in parts[4]:
            step = int(parts[4].split("/")[0])
            runs.setdefault(int(parts[2]), []).append((step, float(parts[3]), int(parts[0])))
    merged: list[tuple[int, float, int]] = []
    for samples in sorted(runs.values(), key=lambda rows: rows[0][2]):
        start = samples[0][0]
        kept = [row for row in merged if row[0] <= start]
        offset = _interpolate(merged, start, absolute=True)[0] if kept else 0.0
        merged = kept + [(step, cpu + offset, wall) for step, cpu, wall in samples]
    return merged


def _interpolate(points: list[tuple[int, float, int]], step: int,
                 absolute: bool = False) -> tuple[float, float] | None:
    """(CPU seconds, wall seconds since the first sample) at `step`, linear between samples."""
    if not points or (step > points[-1][0] * 1.05 and not absolute):
        return None
    start_wall = 0 if absolute else points[0][2]
    previous = (0, 0.0, start_wall)
    for point in points:
        if point[0] >= step:
            span = max(point[0] - previous[0], 1)
            share = (step - previous[0]) / span
            cpu = previous[1] + share * (point[1] - previous[1])
            wall = previous[2] + share * (point[2] - previous[2]) - start_wall
            return cpu, wall
        previous = point
    last = points[-1]
    rate = last[1] / max(last[0], 1)
    return rate * step, (last[2] - start_wall) * step / max(last[0], 1)


def _val_mel_l1(kind: str) -> dict[int, float]:
    import csv

    path = MODELS / kind / "real" / "train_log.csv"
    if not path.is_file():
        return {}
    with open(path, encoding="utf-8") as handle:
        return {int(r["step"]): float(r["val_mel_l1"]) for r in csv.DictReader(handle)
                if r.get("val_mel_l1")}


def evaluate(cpu_log: Path, out: Path | None, limit: int | None) -> dict:
    import torch
    import yaml

    from vestnik.acoustic import symbols
    from vestnik.acoustic.checkpoint import export_model
    from vestnik.acoustic.config import resolve_experiment as resolve_acoustic
    from vestnik.acoustic.evaluate import evaluate_acoustic
    from vestnik.acoustic.model import AcousticModel
    from vestnik.corpus import SOURCES
    from vestnik.training import load_state
    from vestnik.vocoder.checkpoint import export_generator
    from vestnik.vocoder.config import resolve_experiment as resolve_vocoder
    from vestnik.vocoder.evaluate import evaluate_vocoder
    from vestnik.vocoder.models import Generator

    torch.set_num_threads(1)
    recipe = yaml.safe_load((ROOT / "config" / "real-speech.yaml").read_text(encoding="utf-8"))
    configs = {
        "acoustic": resolve_acoustic("real", recipe["acoustic"]["experiments"]["real"]),
        "vocoder": resolve_vocoder("real", recipe["vocoder"]["experiments"]["real"]),
    }
    val = ROOT / "results" / "data" / "ruslan" / "val.tsv"
    corpus = ROOT / SOURCES["festvox-ru"]
    done: dict[str, list[dict]] = {}
    if out is not None and out.is_file():  # checkpoints scored by an earlier call are kept
        done = json.loads(out.read_text(encoding="utf-8"))
    results: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for kind in ("acoustic", "vocoder"):
            points = cpu_by_step(cpu_log, kind) if cpu_log.is_file() else []
            val_l1 = _val_mel_l1(kind)
            rows = [row for row in done.get(kind, []) if "step" in row]
            scored = {row["step"] for row in rows}
            folder = MODELS / kind / "real" / "checkpoints"
            for path in sorted(folder.glob("step_*.pt")):
                step = int(path.stem.split("_")[1])
                if step in scored:
                    continue
                state = load_state(path)
                target = Path(scratch) / f"{kind}_{step}.pt"
                if kind == "acoustic":
                    model = AcousticModel(len(symbols.SYMBOLS), configs["acoustic"]["model"])
                    model.load_state_dict(state["model"])
                    export_model(model, target)
                    metrics = evaluate_acoustic(target, val, Path(scratch) / f"a{step}",
                                                corpus_root=corpus, limit=limit)
                else:
                    generator = Generator.from_config(configs["vocoder"]["generator"])
                    generator.load_state_dict(state["generator"])
                    export_generator(generator, target)
                    metrics = evaluate_vocoder(target, val, Path(scratch) / f"v{step}",
                                               limit=limit, plots=1, device="cpu")
                timing = _interpolate(points, step)
                rows.append({
                    "step": step,
                    "cpu_minutes": round(timing[0] / 60, 2) if timing else None,
                    "wall_minutes": round(timing[1] / 60, 2) if timing else None,
                    "val_mel_l1_train_log": val_l1.get(step),
                    **{k: v for k, v in metrics.items() if k not in ("model", "generator")},
                })
                print(kind, rows[-1], flush=True)
            for row in rows:  # CPU times from the latest log
                timing = _interpolate(points, row["step"])
                row["cpu_minutes"] = round(timing[0] / 60, 2) if timing else row["cpu_minutes"]
            rows.sort(key=lambda row: row["step"])
            if points:
                last = points[-1]
                rows.append({"steps_per_cpu_second": round(last[0] / max(last[1], 1e-9), 4),
                             "steps_per_wall_second": round(
                                 last[0] / max(last[2] - points[0][2], 1), 4)})
            results[kind] = rows
    if out is not None:
        out.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=("train", "evaluate"))
    parser.add_argument("--cpu-log", type=Path, default=ROOT / "results" / "bench_real_cpu.log")
    parser.add_argument("--every", type=float, default=30.0)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--kind", choices=tuple(TARGETS), action="append",
                        help="train only this model (repeatable; default both)")
    args, extra = parser.parse_known_args()
    if args.mode == "train":
        return train(args.cpu_log, args.every, args.kind or list(TARGETS), extra)
    evaluate(args.cpu_log, args.out, args.limit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
