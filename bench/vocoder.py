"""Vocoder benchmarks on this machine: HiFi-GAN inference speed and training steps per second.

Inference: V1, V2 and V3 (random weights; speed does not depend on them) vocode a mel of
`--seconds` of audio. Two variants run side by side in one process:
  exported  - weight norm folded into plain weights, eval mode, torch.inference_mode()
  baseline  - the same network as trained: weight norm kept, autograd on, no inference tweaks
Speed is seconds of audio per wall-clock second (x real time); the median of `--repeats` runs.

Training: optimiser steps per second of the `tiny` config experiment and of the full V1 recipe
(batch 4 x 2 accumulation, segment 8192, full-size discriminators) on random data.

Official (--official DIR, a checkout of jik876/hifi-gan): its Generator with the same weights,
weight norm removed as its inference.py does, against the project's exported generator (the
fused inference path), called in turn in one process; reported are both speeds (best call),
their ratio, the median of the per-round ratios and the largest output difference. Only this
comparison runs in this mode.

Usage:  python bench/vocoder.py [--threads N] [--seconds 4] [--repeats 3] [--out FILE]
        python bench/vocoder.py --official DIR [--threads 1] [--repeats 7] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import torch
import yaml

from vestnik.vocoder.config import resolve_experiment
from vestnik.vocoder.models import GENERATOR_CONFIGS, Generator

ROOT = Path(__file__).resolve().parents[1]
PAPER_CPU = {"v1": 1.43, "v2": 9.74, "v3": 13.44}
"""HiFi-GAN paper, Table 1: CPU synthesis speed in x real time (MacBook Pro, i7 2.6 GHz)."""


def load_average() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def time_runs(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def inference_speed(name: str, seconds: float, repeats: int) -> tuple[float, float]:
    """(exported, baseline) speed in x real time for generator `name`."""
    torch.manual_seed(0)
    frames = int(seconds * 22050 / 256)
    mel = torch.randn(1, 80, frames) - 5.0
    audio_seconds = frames * 256 / 22050
    baseline = Generator.from_config(GENERATOR_CONFIGS[name])
    exported = Generator.from_config(GENERATOR_CONFIGS[name])
    exported.load_state_dict(baseline.state_dict())
    exported.remove_weight_norm().eval()

    def run_exported():
        with torch.inference_mode():
            exported(mel)

    def run_baseline():
        baseline(mel)

    fast = time_runs(run_exported, repeats)
    slow = time_runs(run_baseline, repeats)
    return audio_seconds / fast, audio_seconds / slow


def official_generator_class(checkout: Path):
    """The `Generator` class of an official checkout (its models.py imports its utils.py)."""
    import importlib.util
    import sys

    if not (checkout / "models.py").is_file():
        raise SystemExit(f"{checkout} is not a jik876/hifi-gan checkout (no models.py)")
    sys.path.insert(0, str(checkout))
    spec = importlib.util.spec_from_file_location("official_hifigan_models", checkout / "models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Generator


def official_comparison(checkout: Path, seconds: float, repeats: int) -> list[str]:
    """Markdown rows: official vs exported generator speed, same weights, in turn."""
    import json
    import types

    official_class = official_generator_class(checkout)
    frames = int(seconds * 22050 / 256)
    audio_seconds = frames * 256 / 22050
    rows = []
    for name in ("v1", "v2", "v3"):
        config = json.loads((checkout / f"config_{name}.json").read_text(encoding="utf-8"))
        torch.manual_seed(0)
        official = official_class(types.SimpleNamespace(**config))
        ours = Generator.from_config(GENERATOR_CONFIGS[name])
        ours.load_state_dict(official.state_dict(), strict=True)
        official.eval().remove_weight_norm()
        ours.eval().remove_weight_norm()
        mel = torch.randn(1, 80, frames, generator=torch.Generator().manual_seed(1)) - 5.0
        times: dict[str, list[float]] = {"official": [], "project": []}
        with torch.inference_mode():
            error = float((official(mel) - ours(mel)).abs().max())
            for _ in range(repeats):
                for label, net in (("official", official), ("project", ours)):
                    start = time.perf_counter()
                    net(mel)
                    times[label].append(time.perf_counter() - start)
        slow, fast = (min(times[k]) for k in ("official", "project"))
        ratio = statistics.median(a / b for a, b in zip(times["official"], times["project"],
                                                         strict=True))
        rows.append(f"| {name.upper()} | {audio_seconds / slow:.2f} | {audio_seconds / fast:.2f} "
                    f"| **{slow / fast:.2f}** | {ratio:.2f} | {error:.1e} |")
        print(rows[-1], flush=True)
    return rows


def training_speed(block: dict, steps: int) -> float:
    """Optimiser steps per second of an experiment block on random segments (the recipe's
    own train_step; the first step is not timed)."""
    import tempfile

    from training import project_recipe, random_vocoder_batches

    with tempfile.TemporaryDirectory() as tmp:
        recipe = project_recipe("vocoder", {**block, "device": "cpu"}, torch.device("cpu"),
                                Path(tmp))
        config = recipe.config
        count = config["accumulation"]
        pool = random_vocoder_batches(config["batch_size"], config["segment"], 2 * count)
        batches = [[pool[(i * count + j) % len(pool)][:2] for j in range(count)]
                   for i in range(steps + 1)]
        recipe.train_step(0, batches[0])
        start = time.perf_counter()
        for step, batch in enumerate(batches[1:], start=1):
            recipe.train_step(step, batch)
        return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--seconds", type=float, default=4.0, help="audio per inference run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tiny-steps", type=int, default=10)
    parser.add_argument("--v1-steps", type=int, default=2, help="0 skips the V1 recipe")
    parser.add_argument("--out", help="also write the markdown here")
    parser.add_argument("--official", type=Path, help="a jik876/hifi-gan checkout to compare with")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.official:
        lines = [
            f"Machine: {cpu_name()}, {os.cpu_count()} cores visible, torch {torch.__version__}, "
            f"{args.threads} torch thread(s). Load average before: {load_average()}.",
            "",
            f"{args.seconds:g} s of audio per call, {args.repeats} calls each, in turn; speeds "
            "are the best call's (the least disturbed on a shared machine), and the median of "
            "the per-round ratios is given too:",
            "",
            "| generator | official, weight norm removed (x real time) | project, exported "
            "(x real time) | project / official | median of round ratios | max abs difference |",
            "|---|---|---|---|---|---|",
            *official_comparison(args.official, args.seconds, args.repeats),
            "",
            f"Load average after: {load_average()}.",
        ]
        text = "\n".join(lines) + "\n"
        print(text)
        if args.out:
            Path(args.out).write_text(text, encoding="utf-8")
        return

    load_before = load_average()
    lines = [
        f"Machine: {cpu_name()}, {os.cpu_count()} cores visible, torch {torch.__version__}, "
        f"{args.threads} torch thread(s); no GPU (CUDA available: {torch.cuda.is_available()}).",
        f"Load average (1/5/15 min) before: {load_before}.",
        "",
        f"Inference, {args.seconds:g} s of audio per run, median of {args.repeats}:",
        "",
        "| generator | exported (x real time) | baseline: weight norm, autograd (x real time) "
        "| exported / baseline | paper CPU (x real time) |",
        "|---|---|---|---|---|",
    ]
    for name in ("v1", "v2", "v3"):
        fast, slow = inference_speed(name, args.seconds, args.repeats)
        lines.append(f"| {name.upper()} | {fast:.2f} | {slow:.2f} | {fast / slow:.2f} "
                     f"| {PAPER_CPU[name]} |")
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text(encoding="utf-8"))
    tiny = config["vocoder"]["experiments"]["tiny"]
    lines += [
        "",
        "Training (one optimiser step = batch_size x accumulation segments):",
        "",
        "| experiment | batch x accumulation x segment | steps/s | s/step |",
        "|---|---|---|---|",
    ]
    for label, block, steps in (
        ("tiny (config/config.yaml)", tiny, args.tiny_steps),
        ("V1 recipe (defaults)", {"generator": "v1"}, args.v1_steps),
    ):
        if steps < 1:
            continue
        resolved = resolve_experiment("bench", block)
        speed = training_speed(block, steps)
        shape = f"{resolved['batch_size']} x {resolved['accumulation']} x {resolved['segment']}"
        lines.append(f"| {label} | {shape} | {speed:.3f} | {1 / speed:.2f} |")
    lines += ["", f"Load average after: {load_average()}."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
