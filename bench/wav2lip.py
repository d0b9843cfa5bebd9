"""Wav2Lip engine: frames per second, memory per instance, and 1 vs 3 instances on one GPU.

Usage (from the repo root):
    .venv/bin/python bench/wav2lip.py --device cpu [--out bench/wav2lip_cpu.json]
    .venv/bin/python bench/wav2lip.py --device cuda [--checkpoint resources/models/wav2lip_gan.pth]
    .venv/bin/python bench/wav2lip.py --official DIR [--out bench/wav2lip_network_cpu.json]

Weights are random unless --checkpoint is given: the work per frame is the same either way.
Every measurement runs in fresh processes, so peak RSS is that of one instance.

1. Instances: the engine renders a chunk (face crop, network, blend; no video encoding) after a
   warm-up batch. On the CPU: one instance at batch 1 and at batch 16. With --device cuda: 1, 2
   and 3 instances at once on GPU 0 (each its own process and slot, started together), at
   --gpu-batch; reported are the summed frames per second, peak RSS and peak GPU memory
   (torch's max_memory_reserved) per instance.
0. Network (--official DIR, a checkout of Rudrabha/Wav2Lip): the official generator class, this
   project's `Wav2Lip` and its inference form `InferenceWav2Lip`, all with the same weights, in
   one process, called in turn round after round at each --network-batches size; reported are
   the best and the median frames/s of each (on a shared machine the best call is the least
   disturbed one), their ratios to the official network and the largest output difference.
   Nothing else runs in this mode.
2. Jobs (--device cuda, or --jobs on the CPU): a 30 s and a 60 s recording through snakemake
   with `lipsync.engine: wav2lip` and 3 chunks, at `--resources gpu=1` (chunks one after
   another) and `gpu=3` (three instances on the GPU at once); reported are the lip-sync stage's
   wall time and the whole job's, and their gpu=1 / gpu=3 ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "src"))

RATE = 22050
FPS = 25.0


def speech_like(seconds: float, seed: int = 0):
    """Syllable-rate bursts of a voiced tone plus noise, with pauses (stands in for speech)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    envelope = np.clip(np.sin(2 * np.pi * 2.7 * t) * 1.6, 0, 1) ** 2
    envelope *= np.sin(2 * np.pi * t / 7.0) > -0.8
    voiced = np.sin(2 * np.pi * (140 + 60 * np.sin(2 * np.pi * 1.3 * t)) * t)
    return (envelope * (0.4 * voiced + 0.1 * rng.standard_normal(t.size))).astype(np.float32)


def make_checkpoint(folder: Path) -> Path:
    import torch

    from vestnik.lipsync.wav2lip_model import Wav2Lip, save_checkpoint

    torch.manual_seed(0)
    path = folder / "wav2lip_random.pth"
    save_checkpoint(Wav2Lip(), path)
    return path


def run_instance(args: argparse.Namespace) -> None:
    """One engine instance (a child process): warm up, wait for the go file, render, report."""
    from vestnik.avatar import load_avatar
    from vestnik.lipsync.chunk import ChunkJob
    from vestnik.lipsync.wav2lip import Wav2LipEngine

    gpu = {"devices": [0] if args.device == "cuda" else "auto", "slots_per_device": 8,
           "lock_dir": args.lock_dir}
    engine = Wav2LipEngine(
        {"checkpoint": args.checkpoint, "batch_size": args.batch}, job="bench", gpu=gpu
    )
    avatar = load_avatar(ROOT / "resources" / "avatar.png")
    seconds = (args.frames + args.batch) / FPS + 1.0
    audio = speech_like(seconds, seed=os.getpid())

    def chunk(first: int, count: int) -> ChunkJob:
        return ChunkJob(avatar, audio, RATE, 0.0, start_frame=first, n_frames=count, fps=FPS)

    import torch

    for _ in engine.render(chunk(0, args.batch)):
        pass
    if engine.device.startswith("cuda"):
        torch.cuda.synchronize()
    print("ready", flush=True)
    while not Path(args.go).exists():
        time.sleep(0.01)
    start = time.perf_counter()
    started = time.time()
    count = sum(1 for _ in engine.render(chunk(args.batch, args.frames)))
    if engine.device.startswith("cuda"):
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    gpu_mib = None
    if engine.device.startswith("cuda"):
        gpu_mib = torch.cuda.max_memory_reserved(engine.device) / 2**20
    print(json.dumps({
        "device": engine.device,
        "frames": count,
        "seconds": elapsed,
        "start": started,
        "end": started + elapsed,
        "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "gpu_mib": gpu_mib,
    }), flush=True)


def instances(args: argparse.Namespace, checkpoint: Path, count: int, batch: int, frames: int):
    """Start `count` instance processes, release them together, and collect their reports."""
    with tempfile.TemporaryDirectory() as scratch:
        go = Path(scratch) / "go"
        command = [
            sys.executable, __file__, "--instance", "--device", args.device,
            "--checkpoint", str(checkpoint), "--batch", str(batch), "--frames", str(frames),
            "--go", str(go), "--lock-dir", str(Path(scratch) / "locks"),
        ]
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        procs = [
            subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
            for _ in range(count)
        ]
        for proc in procs:
            line = proc.stdout.readline().strip()
            if line != "ready":
                sys.exit(f"instance failed to start: {line!r}")
        go.touch()
        reports = []
        for proc in procs:
            out, _ = proc.communicate()
            if proc.returncode != 0:
                sys.exit("instance failed")
            reports.append(json.loads(out.strip().splitlines()[-1]))
    wall = max(r["end"] for r in reports) - min(r["start"] for r in reports)
    total = sum(r["frames"] for r in reports)
    return {
        "instances": count,
        "batch": batch,
        "device": reports[0]["device"],
        "frames_per_instance": frames,
        "fps_total": round(total / wall, 2),
        "fps_per_instance": [round(r["frames"] / r["seconds"], 2) for r in reports],
        "peak_rss_mib": [round(r["rss_mib"]) for r in reports],
        "peak_gpu_mib": [None if r["gpu_mib"] is None else round(r["gpu_mib"]) for r in reports],
    }


def job_times(checkpoint: Path, seconds: float, gpus: int, device: str, cores: int) -> dict:
    """Lip-sync stage and total wall time of one recording job at `--resources gpu=N`."""
    from workflow_helpers import base_config, run_workflow

    from vestnik import media

    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        voice = workdir / "voice.wav"
        media.write_wav(voice, speech_like(seconds), RATE)
        job = {
            "audio": str(voice),
            "chunks": {"workers": 3, "max_seconds": None, "min_seconds": 2.0},
            "lipsync": {"engine": "wav2lip", "wav2lip": {"checkpoint": str(checkpoint)}},
        }
        config = base_config({"job": job})
        config["gpu"] = {
            "devices": [0] if device == "cuda" else "auto",
            "slots_per_device": 3,
            "lock_dir": str(workdir / "locks"),
        }
        started = time.perf_counter()
        result = run_workflow(
            workdir, config, "results/jobs/job/stats.json", cores=cores,
            extra=("--resources", f"gpu={gpus}", "--keep-going"),
        )
        wall = time.perf_counter() - started
        if result.returncode != 0:
            sys.exit(result.stderr[-3000:])
        stats = json.loads((workdir / "results" / "jobs" / "job" / "stats.json").read_text())
    return {
        "speech_seconds": round(stats["speech_seconds"], 2),
        "gpu": gpus,
        "chunks": stats["chunks"],
        "lipsync_seconds": stats["seconds"]["lipsync_parallel"],
        "stages_total_seconds": stats["seconds"]["total"],
        "snakemake_wall_seconds": round(wall, 2),
    }


def official_wav2lip_class(checkout: Path):
    """The `Wav2Lip` class of an official checkout, imported under a name of its own."""
    import importlib.util

    package = checkout / "models"
    if not (package / "wav2lip.py").is_file():
        sys.exit(f"{checkout} is not a Rudrabha/Wav2Lip checkout (no models/wav2lip.py)")
    spec = importlib.util.spec_from_file_location(
        "official_wav2lip_models", package / "__init__.py",
        submodule_search_locations=[str(package)],
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.Wav2Lip


def trained_like_network(checkpoint: str | None):
    """The project's network with checkpoint weights, or random ones whose BatchNorm layers
    carry non-trivial statistics (fresh ones are identities, which would flatter folding)."""
    import torch

    from vestnik.lipsync.wav2lip_model import Wav2Lip, load_wav2lip, with_trained_statistics

    if checkpoint:
        return load_wav2lip(checkpoint)
    torch.manual_seed(0)
    return with_trained_statistics(Wav2Lip(), seed=0)


def network_comparison(checkout: Path, checkpoint: str | None, batches: list[int],
                       rounds: int) -> list[dict]:
    """Official vs project networks, same weights and inputs, called in turn each round."""
    import statistics

    import torch

    from vestnik.lipsync.wav2lip_model import InferenceWav2Lip

    ours = trained_like_network(checkpoint)
    official = official_wav2lip_class(checkout)().eval()
    official.load_state_dict(ours.state_dict(), strict=True)
    networks = {"official": official, "project": ours, "inference": InferenceWav2Lip(ours).eval()}
    rows = []
    for batch in batches:
        generator = torch.Generator().manual_seed(batch)
        mel = torch.randn(batch, 1, 80, 16, generator=generator)
        faces = torch.rand(batch, 6, 96, 96, generator=generator)
        times: dict[str, list[float]] = {name: [] for name in networks}
        with torch.inference_mode():
            reference = official(mel, faces)
            error = {name: float((net(mel, faces) - reference).abs().max())
                     for name, net in networks.items()}
            for _ in range(rounds):
                for name, net in networks.items():
                    start = time.perf_counter()
                    net(mel, faces)
                    times[name].append(time.perf_counter() - start)
        best = {name: batch / min(t) for name, t in times.items()}
        median = {name: batch / statistics.median(t) for name, t in times.items()}
        row = {
            "batch": batch,
            "rounds": rounds,
            "fps_best": {name: round(v, 2) for name, v in best.items()},
            "fps_median": {name: round(v, 2) for name, v in median.items()},
            "ratio_to_official": {name: round(v / best["official"], 3) for name, v in best.items()},
            "median_ratio_to_official": {
                name: round(v / median["official"], 3) for name, v in median.items()
            },
            "max_abs_diff": {name: float(f"{v:.3g}") for name, v in error.items()},
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--checkpoint", help="official-format weights (default: random)")
    parser.add_argument("--frames", type=int, default=None, help="timed frames per instance")
    parser.add_argument("--gpu-batch", type=int, default=32)
    parser.add_argument("--jobs", action="store_true", help="also time jobs on the CPU")
    parser.add_argument("--job-seconds", default="30,60")
    parser.add_argument("--out", help="write the results as JSON here")
    parser.add_argument("--official", type=Path,
                        help="a Rudrabha/Wav2Lip checkout: compare the networks (CPU) only")
    parser.add_argument("--network-batches", default="1,16,32")
    parser.add_argument("--rounds", type=int, default=7, help="timed calls per network")
    parser.add_argument("--instance", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--go", help=argparse.SUPPRESS)
    parser.add_argument("--lock-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.instance:
        run_instance(args)
        return

    load_before = os.getloadavg()
    if args.official:
        import torch

        results = {
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "official_checkout": str(args.official),
            "weights": args.checkpoint or "random, BatchNorm statistics perturbed",
            "load_before": [round(x, 2) for x in load_before],
            "network": network_comparison(
                args.official, args.checkpoint,
                [int(b) for b in args.network_batches.split(",")], args.rounds,
            ),
            "load_after": [round(x, 2) for x in os.getloadavg()],
        }
        if args.out:
            Path(args.out).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        return
    results: dict = {
        "device": args.device,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "load_before": [round(x, 2) for x in load_before],
        "instances": [],
        "jobs": [],
    }
    with tempfile.TemporaryDirectory() as scratch:
        checkpoint = Path(args.checkpoint) if args.checkpoint else make_checkpoint(Path(scratch))
        if args.device == "cpu":
            plans = [(1, 1, args.frames or 16), (1, 16, args.frames or 48)]
        else:
            import torch

            results["gpu"] = torch.cuda.get_device_name(0)
            frames = args.frames or 20 * args.gpu_batch
            plans = [(n, args.gpu_batch, frames) for n in (1, 2, 3)]
        for count, batch, frames in plans:
            row = instances(args, checkpoint, count, batch, frames)
            print(json.dumps(row), flush=True)
            results["instances"].append(row)
        if args.device == "cuda" or args.jobs:
            for seconds in (float(s) for s in args.job_seconds.split(",")):
                pair = [
                    job_times(checkpoint, seconds, gpus, args.device, cores=max(3, gpus))
                    for gpus in (1, 3)
                ]
                ratio = pair[0]["lipsync_seconds"] / pair[1]["lipsync_seconds"]
                total_ratio = pair[0]["stages_total_seconds"] / pair[1]["stages_total_seconds"]
                for row in pair:
                    print(json.dumps(row), flush=True)
                results["jobs"].append(
                    {"runs": pair, "lipsync_ratio": round(ratio, 2),
                     "total_ratio": round(total_ratio, 2)}
                )
    results["load_after"] = [round(x, 2) for x in os.getloadavg()]
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
