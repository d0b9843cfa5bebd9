"""Training throughput: optimiser steps per second of the training recipes under one setting
changed at a time (world size, torch.compile, loader workers), and, with --official, the
official HiFi-GAN trainer's step against the project's at the same batch.

Usage (from the repo root):
    python bench/training.py [--vary world_size=1,2] [--recipes v1 acoustic] [--rounds 1]
        [--steps v1=3 acoustic=12] [--warmup 1] [--threads-per-rank 1] [--json out.json]
    python bench/training.py --vary compile=false,true --recipes acoustic vocoder-tiny
    python bench/training.py --vary workers=0,2 --recipes acoustic vocoder-tiny
    python bench/training.py --official DIR [--device cuda] [--batch 16] [--seconds 60]

Setting runs (CPU or CUDA): each run trains a fresh experiment through the project's trainer
(`train_vocoder` / `train_acoustic`, torchrun for world_size > 1) on a 40-utterance eSpeak corpus
built here, with the same global batch whatever is varied. The recipes: `v1` the schema's
vocoder defaults (V1 generator, full discriminators, 4 x 2 segments of 8192), `vocoder-tiny`
config.yaml's `tiny` vocoder experiment, `acoustic` its `ruslan` experiment (batch 32). The
values of the varied setting run in turn, A B for one round and A B B A for two, so a drift of
the machine's load falls on both. Steps per second are the trainer's own per-step
`steps_per_s` (train_log.csv, log_interval 1: the loop's time including the batch, without
validation and checkpoints), over the steps after the first `--warmup` (compilation and
recompilation for other shapes fall in the first steps; the warm-up steps' seconds are
printed too). Every rank gets `--threads-per-rank` torch threads, so world size N uses N times
the cores of one process (idle OpenMP threads spin: oversubscribed cores would measure the
machine's load, not the trainer).

Official (--official DIR, a checkout of jik876/hifi-gan, fetched for the benchmark): its
train.py step (its V1 Generator, MPD, MSD, losses, AdamW, 45 x mel L1, fp32, cudnn.benchmark as
train.py sets it) against the project's vocoder step (`VocoderTraining.train_step` at batch
`--batch` x 1, segment 8192, the experiment's bf16 and TF32 on CUDA; compiled too with
--compile), on the same random batches, called in turn in one process; each side's float32
switches are set before its calls (torch's defaults for the official one). Without librosa the
official step's mel loss uses vestnik.mel (the same STFT, filter bank and log formula; the JSON
says which). Target: the project's step at least 1.3x the official steps/s.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

RECIPES = {
    "v1": "vocoder V1 recipe",
    "vocoder-tiny": "vocoder tiny experiment",
    "acoustic": "acoustic recipe",
}
DEFAULT_STEPS = {"v1": 3, "vocoder-tiny": 20, "acoustic": 12}


def parse_value(text: str):
    """A setting's value as YAML reads it (false, 2, ...)."""
    import yaml

    return yaml.safe_load(text)


def recipe_block(recipe: str, steps: int, device: str) -> tuple[Callable, dict]:
    """(trainer, experiment block) of a recipe for a short timed run."""
    import yaml

    from vestnik.acoustic.train import train_acoustic
    from vestnik.vocoder.train import train_vocoder

    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text(encoding="utf-8"))
    run = {"log_interval": 1, "val_items": 1, "device": device, "steps": steps}
    if recipe == "acoustic":
        return train_acoustic, {**config["acoustic"]["experiments"]["ruslan"], **run,
                                "plots": 0, "stats_items": 100}
    vocoder = config["vocoder"]["experiments"]["tiny"] if recipe == "vocoder-tiny" else {}
    return train_vocoder, {**vocoder, **run, "samples": 0, "val_interval": steps,
                           "checkpoint_interval": steps}


def step_seconds(folder: Path) -> list[float]:
    """Seconds of each logged step (log_interval 1), in order."""
    from vestnik.training import CsvLog

    rows = [r for r in CsvLog(folder / "train_log.csv", []).read() if r.get("steps_per_s")]
    return [1.0 / float(r["steps_per_s"]) for r in rows]


def setting_runs(args) -> list[dict]:
    """Every recipe at every value of the varied setting, in the alternated order."""
    from vestnik.corpus.split import espeak_split

    key, _, values = args.vary.partition("=")
    values = [parse_value(v) for v in values.split(",")]
    order = list(range(len(values)))
    sequence = [i for r in range(args.rounds) for i in (order if r % 2 == 0 else order[::-1])]
    steps = {**DEFAULT_STEPS, **{k: int(v) for k, v in (s.split("=") for s in args.steps)}}
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        data = espeak_split(ROOT / "resources" / "texts" / "corpus_sentences.txt", Path(tmp), 40)
        for recipe in args.recipes:
            train, block = recipe_block(recipe, steps[recipe], args.device)
            for run_index, value_index in enumerate(sequence):
                value = values[value_index]
                changed = {**block, key: value}
                world = changed.get("world_size", 1)
                out = Path(tmp) / f"{recipe}_{run_index}"
                threads = args.threads_per_rank * world
                load_before = os.getloadavg()[0]
                start = time.time()
                train(out.name, changed, data / "train.tsv", data / "val.tsv", out,
                      threads=threads)
                seconds = step_seconds(out)
                timed = seconds[args.warmup:]
                results.append({
                    "recipe": RECIPES[recipe], "setting": key, "value": value,
                    "device": args.device, "threads": threads,
                    "steps_per_s": round(len(timed) / sum(timed), 4),
                    "median_steps_per_s": round(1 / statistics.median(timed), 4),
                    "timed_steps": len(timed),
                    "warmup_s": [round(s, 1) for s in seconds[: args.warmup]],
                    "wall_s": round(time.time() - start, 1),
                    "load_before": round(load_before, 2),
                    "load_after": round(os.getloadavg()[0], 2),
                })
                print(json.dumps(results[-1]), flush=True)
    return results


def setting_table(results: list[dict]) -> list[str]:
    """Markdown rows: each run, and its rate against the mean of the first value's runs."""
    first = results[0]["value"]
    base = {}
    for recipe, rows in itertools.groupby(results, key=lambda r: r["recipe"]):
        rates = [r["steps_per_s"] for r in rows if r["value"] == first]
        base[recipe] = statistics.mean(rates)
    setting = results[0]["setting"]
    lines = [f"| recipe | {setting} | threads | steps/s (median) | first step(s), s | "
             f"vs {setting} {first} | load before / after |", "|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(
            f"| {r['recipe']} | {r['value']} | {r['threads']} | {r['steps_per_s']:.4f} "
            f"({r['median_steps_per_s']:.4f}) | {', '.join(map(str, r['warmup_s']))} | "
            f"{r['steps_per_s'] / base[r['recipe']]:.2f}x | "
            f"{r['load_before']:.1f} / {r['load_after']:.1f} |")
    return lines


# --- the official trainer's step against the project's -------------------------------------


def load_official(checkout: Path) -> types.SimpleNamespace:
    """The official checkout's models module, V1 config and mel function (or None without
    librosa)."""
    if not (checkout / "models.py").is_file() or not (checkout / "config_v1.json").is_file():
        raise SystemExit(f"{checkout} is not a jik876/hifi-gan checkout")
    sys.path.insert(0, str(checkout))

    def module(name: str):
        spec = importlib.util.spec_from_file_location(f"official_{name}", checkout / f"{name}.py")
        loaded = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(loaded)
        return loaded

    config = json.loads((checkout / "config_v1.json").read_text(encoding="utf-8"))
    try:
        mel = module("meldataset").mel_spectrogram
    except ImportError:  # librosa (its filter bank) is not installed
        mel = None
    return types.SimpleNamespace(models=module("models"), h=types.SimpleNamespace(**config),
                                 mel=mel)


def official_step(official: types.SimpleNamespace, device):
    """train.py's optimiser step on (mel, audio, target mel), as train.py runs it."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    from vestnik.mel import mel_spectrogram

    h, models = official.h, official.models
    generator = models.Generator(h).to(device)
    mpd = models.MultiPeriodDiscriminator().to(device)
    msd = models.MultiScaleDiscriminator().to(device)
    optim_g = torch.optim.AdamW(generator.parameters(), h.learning_rate,
                                betas=[h.adam_b1, h.adam_b2])
    optim_d = torch.optim.AdamW(itertools.chain(msd.parameters(), mpd.parameters()),
                                h.learning_rate, betas=[h.adam_b1, h.adam_b2])
    if official.mel is not None:
        def mel_of(audio):
            return official.mel(audio, h.n_fft, h.num_mels, h.sampling_rate, h.hop_size,
                                h.win_size, h.fmin, h.fmax_for_loss)
    else:
        def mel_of(audio):
            return mel_spectrogram(audio, fmax=h.fmax_for_loss)

    def step(x, y, y_mel):
        y = y.unsqueeze(1)
        y_g_hat = generator(x)
        y_g_hat_mel = mel_of(y_g_hat.squeeze(1))
        optim_d.zero_grad()
        y_df_hat_r, y_df_hat_g, _, _ = mpd(y, y_g_hat.detach())
        loss_disc_f, _, _ = models.discriminator_loss(y_df_hat_r, y_df_hat_g)
        y_ds_hat_r, y_ds_hat_g, _, _ = msd(y, y_g_hat.detach())
        loss_disc_s, _, _ = models.discriminator_loss(y_ds_hat_r, y_ds_hat_g)
        (loss_disc_s + loss_disc_f).backward()
        optim_d.step()
        optim_g.zero_grad()
        loss_mel = F.l1_loss(y_mel, y_g_hat_mel) * 45
        _, y_df_hat_g, fmap_f_r, fmap_f_g = mpd(y, y_g_hat)
        _, y_ds_hat_g, fmap_s_r, fmap_s_g = msd(y, y_g_hat)
        loss_gen_all = (models.generator_loss(y_ds_hat_g)[0] + models.generator_loss(y_df_hat_g)[0]
                        + models.feature_loss(fmap_s_r, fmap_s_g)
                        + models.feature_loss(fmap_f_r, fmap_f_g) + loss_mel)
        loss_gen_all.backward()
        optim_g.step()
        return float(loss_gen_all.detach())

    return step


def placeholder_split(folder: Path) -> Path:
    """A split TSV naming files that are never read (the timed steps get their batches
    here): a recipe builds from the list alone, so no corpus is needed on a GPU machine."""
    from vestnik.io import write_tsv

    path = folder / "split.tsv"
    write_tsv(path, ("id", "wav", "mel", "frames", "seconds", "text"),
              [{"id": f"u{i}", "wav": "-", "mel": "-", "frames": 400, "seconds": 4.6,
                "text": "Мама мыла раму."} for i in range(64)])
    return path


def project_recipe(kind: str, block: dict, device, folder: Path):
    """The project's vocoder or acoustic recipe of `block` (resolved), built on a placeholder
    split, with the experiment's CUDA float32 switches applied."""
    from vestnik import training

    if kind == "vocoder":
        from vestnik.vocoder.config import resolve_experiment
        from vestnik.vocoder.train import VocoderTraining as recipe_type
    else:
        from vestnik.acoustic.config import resolve_experiment
        from vestnik.acoustic.train import AcousticTraining as recipe_type
    config = resolve_experiment("bench", block)
    split = placeholder_split(folder)
    recipe = recipe_type("bench", config, device, split, split, folder)
    training.cuda_precision(device, config)
    return recipe


@contextlib.contextmanager
def fp32_switches(switches: tuple[str, str, bool]):
    """torch's float32 precision switches (matmul, cudnn conv) and cudnn.benchmark for a
    block, then restored."""
    import torch

    backends = torch.backends
    saved = (backends.cuda.matmul.fp32_precision, backends.cudnn.conv.fp32_precision,
             backends.cudnn.benchmark)
    (backends.cuda.matmul.fp32_precision, backends.cudnn.conv.fp32_precision,
     backends.cudnn.benchmark) = switches
    try:
        yield
    finally:
        (backends.cuda.matmul.fp32_precision, backends.cudnn.conv.fp32_precision,
         backends.cudnn.benchmark) = saved


def current_switches() -> tuple[str, str, bool]:
    import torch

    backends = torch.backends
    return (backends.cuda.matmul.fp32_precision, backends.cudnn.conv.fp32_precision,
            backends.cudnn.benchmark)


def in_turn(sides: dict[str, tuple[Callable[[int], object], tuple]], device, seconds: float,
            batch: int) -> list[dict]:
    """Steps/s of each side (call(i) takes step i under its switches): one warm-up call each
    (its seconds reported: compilation falls there), then rounds of one call per side until
    `seconds` have passed (at least two rounds); ratios against the first side, per round."""
    first = {}
    for name, (call, switches) in sides.items():
        with fp32_switches(switches):
            start = time.perf_counter()
            call(0)
            _sync(device)
        first[name] = round(time.perf_counter() - start, 2)
    times: dict[str, list[float]] = {name: [] for name in sides}
    deadline = time.time() + seconds
    index = 1
    while time.time() < deadline or index < 3:
        for name, (call, switches) in sides.items():
            with fp32_switches(switches):
                start = time.perf_counter()
                call(index)
                _sync(device)
            times[name].append(time.perf_counter() - start)
        index += 1
    anchor = next(iter(sides))
    rows = []
    for name, spent in times.items():
        rows.append({"side": name, "batch": batch, "first_call_s": first[name],
                     "steps_per_s_median": round(1 / statistics.median(spent), 3),
                     "steps_per_s_best": round(1 / min(spent), 3), "calls": len(spent),
                     "vs_first_side_median": round(statistics.median(
                         a / b for a, b in zip(times[anchor], spent, strict=True)), 3)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def random_vocoder_batches(batch: int, segment: int, count: int = 4) -> list[tuple]:
    """(mel, audio, full-band mel of the audio) batches of random audio, as the loaders give."""
    import torch

    from vestnik.mel import mel_spectrogram

    frames = segment // 256
    generator = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(count):
        audio = torch.rand(batch, segment, generator=generator) * 0.2 - 0.1
        batches.append((mel_spectrogram(audio)[:, :, :frames], audio,
                        mel_spectrogram(audio, fmax=None)[:, :, :frames]))
    return batches


def official_comparison(checkout: Path, device_name: str, batch: int, segment: int,
                        seconds: float, compile_too: bool) -> dict:
    """The official trainer's step and the project's (and compiled), same batches, in turn."""
    import torch

    device = torch.device(device_name)
    official = load_official(checkout)
    batches = random_vocoder_batches(batch, segment)
    torch.manual_seed(0)
    step = official_step(official, device)
    sides = {"official train.py step (fp32)": (
        lambda i: step(*(t.to(device) for t in batches[i % len(batches)])),
        ("none", "tf32" if device.type == "cuda" else "none", True))}
    with tempfile.TemporaryDirectory() as tmp:
        for compiled in [False, True] if compile_too else [False]:
            block = {"generator": "v1", "batch_size": batch, "accumulation": 1,
                     "segment": segment, "device": device_name, "compile": compiled}
            recipe = project_recipe("vocoder", block, device, Path(tmp))

            def call(i, recipe=recipe):
                mel, audio, _ = batches[i % len(batches)]
                return recipe.train_step(i, [(mel.to(device), audio.to(device))])

            name = (f"project step{', compiled' if compiled else ''} "
                    f"({'bf16 + TF32' if recipe.bf16 else 'fp32'})")
            sides[name] = (call, current_switches())
        rows = in_turn(sides, device, seconds, batch)
    return {"device": device_name, "segment": segment, "official_commit": _git_head(checkout),
            "official_mel": "meldataset (librosa)" if official.mel else "vestnik.mel",
            "rows": rows}


def acoustic_steps(device_name: str, batch: int, tokens: int, frames: int, seconds: float,
                   compile_too: bool, model: dict | None = None) -> list[dict]:
    """The project's acoustic step (the `ruslan` recipe's model, or `model`) on one random
    batch of `batch` utterances, eager and (with `compile_too`) compiled, in turn."""
    import torch

    from vestnik.acoustic import symbols

    device = torch.device(device_name)
    generator = torch.Generator().manual_seed(0)
    fixed = {"tokens": torch.randint(1, len(symbols.SYMBOLS), (batch, tokens),
                                     generator=generator),
             "token_lengths": torch.full((batch,), tokens),
             "mels": torch.randn(batch, 80, frames, generator=generator) - 5.0,
             "mel_lengths": torch.full((batch,), frames)}
    sides = {}
    with tempfile.TemporaryDirectory() as tmp:
        for compiled in [False, True] if compile_too else [False]:
            block = {"batch_size": batch, "device": device_name, "compile": compiled,
                     **({"model": model} if model else {})}
            recipe = project_recipe("acoustic", block, device, Path(tmp))
            name = (f"acoustic step{', compiled' if compiled else ''} "
                    f"({'bf16 + TF32' if recipe.bf16 else 'fp32'})")
            sides[name] = (lambda i, recipe=recipe: recipe.train_step(i, fixed),
                           current_switches())
        return in_turn(sides, device, seconds, batch)


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def _git_head(checkout: Path) -> str | None:
    head = checkout / ".git" / "HEAD"
    return head.read_text(encoding="utf-8").strip() if head.is_file() else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--vary", default="world_size=1,2", help="KEY=A,B: the setting varied")
    parser.add_argument("--recipes", nargs="+", choices=list(RECIPES), default=["v1", "acoustic"])
    parser.add_argument("--steps", nargs="*", default=[], help="RECIPE=N steps per run")
    parser.add_argument("--rounds", type=int, default=1, help="1: A B; 2: A B B A")
    parser.add_argument("--warmup", type=int, default=1, help="first steps left out")
    parser.add_argument("--threads-per-rank", type=int, default=1)
    parser.add_argument("--official", type=Path, help="a jik876/hifi-gan checkout")
    parser.add_argument("--batch", type=int, default=16, help="official comparison batch")
    parser.add_argument("--segment", type=int, default=8192)
    parser.add_argument("--seconds", type=float, default=60.0, help="official comparison time")
    parser.add_argument("--compile", action="store_true", help="also the compiled project step")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    if args.official:
        import torch

        torch.set_num_threads(args.threads_per_rank)
        results = official_comparison(args.official, args.device, args.batch, args.segment,
                                      args.seconds, args.compile)
    else:
        results = setting_runs(args)
        print(f"\nload average after: {os.getloadavg()[0]:.2f}")
        print("\n".join(setting_table(results)))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
