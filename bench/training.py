"""Training throughput: optimiser steps per second of the vocoder V1 recipe and the acoustic
recipe, on one process and on N torchrun ranks (gloo on the CPU, NCCL on CUDA), side by side.

Usage (from the repo root):
    .venv/bin/python bench/training.py [--device cpu|cuda] [--threads-per-rank 1] [--worlds 1 2]
        [--vocoder-steps 3] [--acoustic-steps 6] [--json out.json]

Each run trains the recipe's defaults (the `ruslan` acoustic experiment of config/config.yaml,
batch 32; the schema's vocoder defaults: V1 generator, batch 4 x 2 segments of 8192) on a
40-utterance eSpeak corpus built here, with the same global batch at every world size. Steps
per second are `steps_per_s` of train_log.csv (one row per step, validation and checkpoint
writing excluded), averaged over the steps after the first (warm-up). Every rank gets
`--threads-per-rank` torch threads, so world size N uses N times the cores of one process
(idle OpenMP threads spin, so oversubscribed cores would measure the machine's load, not the
trainer).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def recipes(steps: dict[str, int], device: str) -> dict[str, tuple]:
    import yaml

    from vestnik.acoustic.train import train_acoustic
    from vestnik.vocoder.train import train_vocoder

    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text(encoding="utf-8"))
    run = {"log_interval": 1, "val_items": 1, "device": device}
    acoustic = {**config["acoustic"]["experiments"]["ruslan"], **run, "plots": 0,
                "stats_items": 100, "steps": steps["acoustic"]}
    return {
        "vocoder V1 recipe": (train_vocoder, {**run, "samples": 0, "steps": steps["vocoder"]}),
        "acoustic recipe": (train_acoustic, acoustic),
    }


def steps_per_second(folder: Path) -> float:
    from vestnik.training import CsvLog

    rows = [r for r in CsvLog(folder / "train_log.csv", []).read() if r.get("steps_per_s")]
    return statistics.mean(float(r["steps_per_s"]) for r in rows[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads-per-rank", type=int, default=1)
    parser.add_argument("--worlds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--vocoder-steps", type=int, default=3)
    parser.add_argument("--acoustic-steps", type=int, default=6)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        from vestnik.corpus.split import espeak_split

        data = espeak_split(ROOT / "resources" / "texts" / "corpus_sentences.txt", Path(tmp), 40)
        steps = {"vocoder": args.vocoder_steps, "acoustic": args.acoustic_steps}
        for label, (train, block) in recipes(steps, args.device).items():
            for world in args.worlds:
                out = Path(tmp) / f"{label.split()[0]}_{world}"
                threads = args.threads_per_rank * world
                start = time.time()
                train(out.name, {**block, "world_size": world}, data / "train.tsv",
                      data / "val.tsv", out, threads=threads)
                rate = steps_per_second(out)
                results.append({"recipe": label, "world_size": world, "device": args.device,
                                "threads": threads, "steps_per_s": round(rate, 4),
                                "wall_s": round(time.time() - start, 1)})
                print(json.dumps(results[-1]), flush=True)
    base = {r["recipe"]: r["steps_per_s"] for r in results if r["world_size"] == args.worlds[0]}
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    print("| recipe | world_size | steps/s | vs world_size", args.worlds[0], "|")
    print("|---|---|---|---|")
    for r in results:
        print(f"| {r['recipe']} | {r['world_size']} | {r['steps_per_s']:.3f} | "
              f"{r['steps_per_s'] / base[r['recipe']]:.2f}x |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
