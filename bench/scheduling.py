"""Snakemake's own cost in this workflow, and what a second core buys end to end.

Usage (from the repo root; the end-to-end part wants an otherwise idle machine):
    .venv/bin/python bench/scheduling.py [--jobs 100] [--repeats 3] [--out bench/scheduling.json]

1. Start-up: `snakemake --version` (Python and Snakemake imports only).
2. Up to date: the default config rendered once, then `snakemake --cores 2` with every output up
   to date (parse the workflow, build the DAG after the chunk checkpoints, check mtimes and
   params, run nothing), and the same as a dry run.
3. Dry run of a generated config with `--jobs` jobs (short texts): the DAG up to the chunk
   checkpoints (speech, plan, merge, stats and the run report per job).
4. End to end: the default config from scratch at `--cores 1` and at `--cores 2`, alternating,
   and their ratio. The load average (`os.getloadavg`, as in `uptime`) is recorded before and
   after each run; with a load above about 0.5 the machine was busy and the ratio says little.
   Each job's stats.json speed-up and start-up overhead share, and the run's lip-sync row.
5. Batch (--batch N): N one-sentence text jobs end to end at `--cores 2`, wall time per job;
   with --baseline DIR (another checkout, e.g. `git archive main | tar -x -C DIR`) the same
   config through that checkout's workflow too, the two runs alternating, and their ratio.
6. Mixed batch (--mixed N): N jobs alternating the default config's first two texts (three and
   two chunks), the same way; each job's speed-up and the second its video was written.
The package of each checkout is compiled to bytecode first, as `make run` does.

    .venv/bin/python bench/scheduling.py --batch 100 --baseline DIR --skip-e2e --repeats 1
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from vestnik.config import load_config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from workflow_helpers import SNAKEMAKE, base_config  # noqa: E402

WORDS = [
    "сегодня", "завтра", "погода", "новости", "город", "солнце", "дождь", "ветер", "утро", "вечер",
]


def default_config() -> dict:
    """The repository's config with paths made absolute, so it runs in any folder."""
    config = load_config(ROOT / "config" / "config.yaml")
    config["defaults"]["avatar"] = str(ROOT / config["defaults"]["avatar"])
    for job in config["jobs"].values():
        if "text_file" in job:
            job["text_file"] = str(ROOT / job["text_file"])
    return config


def generated_jobs(n: int) -> dict:
    """`n` one-sentence text jobs."""
    return {
        f"job{i:04d}": {"text": f"Номер {i}: {WORDS[i % len(WORDS)]} и {WORDS[(i * 7) % 10]}."}
        for i in range(n)
    }


def generated_config(n: int) -> dict:
    return base_config(generated_jobs(n))


def own_config(root: Path, jobs: dict) -> dict:
    """The config of checkout `root` as it ships (its own defaults, which its schema fills in)
    with `jobs` and its avatar path made absolute: a baseline from before a setting existed
    runs the same jobs with what it knew."""
    config = yaml.safe_load((root / "config" / "config.yaml").read_text(encoding="utf-8"))
    config["defaults"]["avatar"] = str(root / config["defaults"]["avatar"])
    config["jobs"] = jobs
    return config


def snakemake(
    workdir: Path, config: dict | None, *args: str, root: Path = ROOT
) -> tuple[float, str]:
    """Run snakemake in `workdir` (writing `config` there first) with the workflow of the
    checkout `root`; (wall seconds, output)."""
    if config is not None:
        (workdir / "config").mkdir(parents=True, exist_ok=True)
        (workdir / "config" / "config.yaml").write_text(
            yaml.safe_dump(config, allow_unicode=True), encoding="utf-8"
        )
    cmd = [str(SNAKEMAKE), "--snakefile", str(root / "Snakefile"), *args]
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed in {workdir}:\n{proc.stderr[-3000:]}")
    return wall, proc.stdout + proc.stderr


def compile_package(root: Path) -> None:
    """Bytecode of the checkout's package, as `make run` compiles it: no job process then
    compiles the package, whether or not the environment lets Python write bytecode."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(root / "src")], check=True)


def load() -> float:
    return round(os.getloadavg()[0], 2)


def timed(label: str, repeats: int, run) -> dict:
    walls = []
    before = load()
    for _ in range(repeats):
        walls.append(run())
    result = {
        "median_s": round(statistics.median(walls), 3),
        "runs_s": [round(w, 3) for w in walls],
        "load_before": before,
        "load_after": load(),
    }
    print(f"{label}: {result}", flush=True)
    return result


def dag_jobs(output: str) -> int:
    match = re.search(r"^total\s+(\d+)$", output, re.M)
    return int(match.group(1)) if match else 0


def job_stats(workdir: Path) -> dict:
    """Each job's speed-up and overhead share from its stats.json, and the run's lip-sync row."""
    from vestnik.report import run_lipsync

    every = [json.loads(p.read_text(encoding="utf-8"))
             for p in sorted((workdir / "results" / "jobs").glob("*/stats.json"))]
    return {
        "jobs": {
            s["job"]: {"chunks": s["chunks"], "speedup": s["speedup"],
                       "overhead_share": (s.get("overhead") or {}).get("share"),
                       "lipsync_parallel_s": s["seconds"]["lipsync_parallel"]}
            for s in every
        },
        "run_lipsync": run_lipsync(every),
    }


def mixed_jobs(n: int) -> dict:
    """`n` jobs alternating the default config's first two texts (several chunks each)."""
    texts = [job["text"] for job in default_config()["jobs"].values() if "text" in job][:2]
    return {f"job{i:04d}": {"text": texts[i % len(texts)]} for i in range(n)}


def landed(workdir: Path, started: float) -> dict:
    """Each job's chunk count, speed-up and the second its video was written, from the start."""
    out = {}
    for stats in sorted((workdir / "results" / "jobs").glob("*/stats.json")):
        s = json.loads(stats.read_text(encoding="utf-8"))
        video = stats.with_name("final.mp4")
        out[s["job"]] = {"chunks": s["chunks"], "speedup": s["speedup"],
                         "video_at_s": round(video.stat().st_mtime - started, 1)}
    return out


def batch(jobs: dict, label: str, baseline: Path | None, repeats: int, scratch: Path,
          per_job: bool = False) -> dict:
    """`jobs` at --cores 2 through this checkout (and `baseline`), alternating, each with its
    own config (`own_config`); with `per_job`, each job's speed-up and when its video landed."""
    count = len(jobs)
    roots = {"this": ROOT, **({"baseline": baseline} if baseline else {})}
    walls: dict[str, list[float]] = {name: [] for name in roots}
    loads, landings = [], []
    for i in range(repeats):
        for name, root in roots.items():
            folder = scratch / f"batch_{name}_{i}"
            before = load()
            started = time.time()
            wall, _ = snakemake(folder, own_config(root, jobs), "--cores", "2", root=root)
            loads.append({"run": f"{name} {i}", "before": before, "after": load()})
            walls[name].append(wall)
            print(f"{label} of {count}, {name}: {wall:.1f} s, {wall / count:.2f} s per job "
                  f"(load {before} -> {load()})", flush=True)
            if per_job:
                landings.append({"run": f"{name} {i}", "jobs": landed(folder, started)})
                print(json.dumps(landings[-1]), flush=True)
            shutil.rmtree(folder)
    result = {
        "jobs": count,
        "wall_s": {name: [round(w, 2) for w in ws] for name, ws in walls.items()},
        "per_job_s": {name: round(statistics.median(ws) / count, 3) for name, ws in walls.items()},
        "loads": loads,
        **({"per_job": landings} if per_job else {}),
    }
    if baseline:
        result["baseline"] = str(baseline)
        result["ratio_baseline_over_this"] = round(
            statistics.median(walls["baseline"]) / statistics.median(walls["this"]), 3
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100, help="jobs in the generated config")
    parser.add_argument("--repeats", type=int, default=3, help="runs per overhead figure")
    parser.add_argument("--e2e-repeats", type=int, default=2, help="runs per core count")
    parser.add_argument("--skip-e2e", action="store_true", help="only the overhead figures")
    parser.add_argument("--out", type=Path, help="write the figures as JSON")
    parser.add_argument("--batch", type=int, default=0, help="one-sentence jobs end to end")
    parser.add_argument("--mixed", type=int, default=0,
                        help="jobs alternating the default config's first two texts, end to end")
    parser.add_argument("--baseline", type=Path, help="another checkout to run the batch with")
    parser.add_argument("--skip-overhead", action="store_true", help="skip parts 1-3")
    args = parser.parse_args()

    figures: dict = {"cpus": os.cpu_count(), "load_at_start": load()}
    for root in (ROOT, *([args.baseline] if args.baseline else [])):
        compile_package(root)
    scratch = Path(tempfile.mkdtemp(prefix="vestnik-sched-"))
    try:
        if args.batch:
            figures["batch"] = batch(generated_jobs(args.batch), "batch", args.baseline,
                                     args.repeats, scratch)
        if args.mixed:
            figures["mixed"] = batch(mixed_jobs(args.mixed), "mixed batch", args.baseline,
                                     args.repeats, scratch, per_job=True)
        if args.skip_overhead:
            raise SystemExit(_finish(figures, args.out))
        figures["startup"] = timed(
            "snakemake --version", args.repeats,
            lambda: snakemake(scratch, None, "--version")[0],
        )

        config = default_config()
        work = scratch / "default"
        first, _ = snakemake(work, config, "--cores", "2")
        print(f"default config rendered in {first:.1f} s", flush=True)
        figures["up_to_date_run"] = timed(
            "up to date, snakemake --cores 2", args.repeats,
            lambda: snakemake(work, None, "--cores", "2")[0],
        )
        _, out = snakemake(work, None, "--dry-run")
        if "Nothing to be done" not in out:
            sys.exit("the up-to-date run was not up to date:\n" + out[-3000:])
        figures["up_to_date_dry_run"] = timed(
            "up to date, snakemake --dry-run", args.repeats,
            lambda: snakemake(work, None, "--dry-run")[0],
        )

        many = scratch / "many"
        _, out = snakemake(many, generated_config(args.jobs), "--dry-run")
        figures["generated"] = {"config_jobs": args.jobs, "dag_jobs": dag_jobs(out)}
        figures["generated"]["dry_run"] = timed(
            f"dry run, {args.jobs} config jobs ({dag_jobs(out)} DAG jobs)", args.repeats,
            lambda: snakemake(many, None, "--dry-run")[0],
        )

        if not args.skip_e2e:
            walls: dict[int, list[float]] = {1: [], 2: []}
            loads = []
            per_job = []
            for i in range(args.e2e_repeats):
                for cores in (1, 2):
                    folder = scratch / f"e2e_{cores}_{i}"
                    before = load()
                    wall, _ = snakemake(folder, config, "--cores", str(cores))
                    loads.append((before, load()))
                    walls[cores].append(wall)
                    print(f"end to end, --cores {cores}: {wall:.1f} s "
                          f"(load {before} -> {load()})", flush=True)
                    if cores == 2:
                        per_job.append(job_stats(folder))
                        print(json.dumps(per_job[-1]), flush=True)
                    shutil.rmtree(folder)
            one, two = statistics.median(walls[1]), statistics.median(walls[2])
            figures["end_to_end"] = {
                "cores_1_s": [round(w, 2) for w in walls[1]],
                "cores_2_s": [round(w, 2) for w in walls[2]],
                "ratio": round(one / two, 3),
                "loads": loads,
                "cores_2_stats": per_job,
            }
            print(f"end to end: median {one:.1f} s at 1 core, {two:.1f} s at 2 cores, "
                  f"ratio {one / two:.2f}", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    _finish(figures, args.out)


def _finish(figures: dict, out: Path | None) -> int:
    figures["load_at_end"] = load()
    if out:
        out.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    main()
