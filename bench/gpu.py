"""Every GPU figure of the benchmarks in one run of at most --budget seconds (default 450).

Meant for a GPU machine that has torch, numpy, OpenCV and PyYAML but perhaps no snakemake,
ffmpeg, eSpeak or internet. Each part runs within its share of the budget, records an error
instead of stopping the run, and the JSON (--out) is rewritten after every part:

1. wav2lip_network: the Wav2Lip generator (`Wav2Lip` and its inference form) at batch 32, 64
   and 128 in fp32, fp16 and bf16 autocast: frames/s and peak GPU memory, one process.
2. wav2lip_instances: 1, 2 and 3 engine instances (separate processes, one GPU slot each, face
   crop + network + blend, no encoding) started together: summed frames/s and GPU memory per
   instance (bench/wav2lip.py's instance mode).
3. wav2lip_jobs: a 30 s and a 60 s speech-like recording planned into 3 chunks as the workflow
   plans them; each chunk is rendered by its own process (interpreter, imports, weights, face
   boxes: what a chunk job pays) through the engine without encoding, one at a time (as
   `--resources gpu=1`) and three at once (`gpu=3`): lip-sync stage wall time, their ratio
   (the original service reports 2.63x / 2.75x on 30 s / 60 s) and the share of the stage that
   the chunk processes spend before their first frame.
4. hifigan: V1, V2, V3 generators on 10 s of mel, fp32 (the paper's V100 figures are 167.9x,
   764.8x and 1186.8x real time) and bf16 autocast; weights random (speed does not depend on
   them); the exported (inference) path.
5. training: with --official DIR (a jik876/hifi-gan checkout), the official train.py step
   against the project's vocoder step at batch 16 x segment 8192 (bf16 + TF32, eager and
   compiled), in turn on the same random batches (target 1.3x the official steps/s); the
   acoustic recipe's step (batch 32, about 7 s utterances), eager and compiled.
6. pytest: the torch-side test modules, whatever time is left (missing packages show as
   errors there; carry them as wheels, see the device notes).

Usage (from the repo root):
    python bench/gpu.py --official hifi-gan --out $OUT/gpu.json   # on the GPU machine
    python bench/gpu.py --device cpu --quick --official hifi-gan --parts training \
        --out /tmp/gpu_cpu.json                                       # rehearsal on a CPU
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

SHARES = {"wav2lip_network": 0.14, "wav2lip_instances": 0.16, "wav2lip_jobs": 0.30,
          "hifigan": 0.10, "training": 0.14, "pytest": 0.16}
"""Each part's share of the budget; a part that ends early leaves its time to the next."""
PAPER_V100 = {"v1": 167.9, "v2": 764.8, "v3": 1186.8}
TEST_MODULES = ["tests/test_wav2lip.py", "tests/test_vocoder_models.py", "tests/test_mel.py",
                "tests/test_slots.py", "tests/test_acoustic.py", "tests/test_vocoder_train.py"]


def synchronize(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed_calls(fn, device: str, deadline: float, max_calls: int = 20):
    """Seconds per call (best and median) after one warm-up: calls until the deadline or
    `max_calls`, at least one."""
    fn()
    synchronize(device)
    times = []
    while not times or (len(times) < max_calls and time.time() < deadline):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def part_wav2lip_network(args, deadline: float) -> list[dict]:
    import torch
    from wav2lip import trained_like_network

    from vestnik.lipsync.wav2lip_model import InferenceWav2Lip

    device = args.device
    model = trained_like_network(None)
    fast = InferenceWav2Lip(model).to(device).eval()
    model = model.to(device)
    batches = [4, 8] if args.quick else [32, 64, 128]
    precisions = ["fp32"] if device == "cpu" else ["fp32", "fp16", "bf16"]
    rows = []
    for batch in batches:
        mel = torch.randn(batch, 1, 80, 16, device=device)
        faces = torch.rand(batch, 6, 96, 96, device=device)
        for precision in precisions:
            for name, net in (("project", model), ("inference", fast)):
                dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)
                if device.startswith("cuda"):
                    torch.cuda.reset_peak_memory_stats()

                def call(net=net, dtype=dtype, mel=mel, faces=faces):
                    with torch.inference_mode(), torch.autocast(
                        device.split(":")[0], dtype=dtype or torch.float32,
                        enabled=dtype is not None,
                    ):
                        return net(mel, faces)

                with torch.inference_mode():
                    reference = model(mel, faces).float()
                    error = float((call().float() - reference).abs().max())
                part_end = min(deadline, time.time() + (deadline - time.time()) / 4)
                best, median = timed_calls(call, device, part_end)
                row = {"batch": batch, "precision": precision, "network": name,
                       "fps_best": round(batch / best, 1), "fps_median": round(batch / median, 1),
                       "max_abs_diff_vs_fp32": float(f"{error:.3g}")}
                if device.startswith("cuda"):
                    row["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated() / 2**20)
                print(json.dumps(row), flush=True)
                rows.append(row)
            if time.time() > deadline:
                return rows
    return rows


def part_wav2lip_instances(args, deadline: float) -> list[dict]:
    import wav2lip as w2l_bench

    bench_args = argparse.Namespace(device=args.device)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        checkpoint = w2l_bench.make_checkpoint(Path(scratch))
        batch = 8 if args.quick else args.gpu_batch
        frames = 2 * batch if args.quick else 12 * batch
        for count in (1, 2, 3):
            if time.time() > deadline:
                break
            row = w2l_bench.instances(bench_args, checkpoint, count, batch, frames)
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


CHUNK_SCRIPT = """
import json, sys, time
started = time.time()
import numpy as np
from vestnik.avatar import load_avatar
from vestnik.chunks import Chunk, chunk_samples
from vestnik.lipsync.chunk import ChunkJob
from vestnik.lipsync.wav2lip import Wav2LipEngine
from vestnik.steps import process_start_time
spec = json.loads(sys.argv[1])
chunk = Chunk(**spec["chunk"])
audio = chunk_samples(np.load(spec["audio"]), spec["rate"], chunk)
engine = Wav2LipEngine({"checkpoint": spec["checkpoint"], "batch_size": spec["batch"]},
                       job="bench", gpu=spec["gpu"])
avatar = load_avatar(spec["avatar"])
work = ChunkJob(avatar, audio, spec["rate"], chunk.audio_start, start_frame=chunk.start_frame,
                n_frames=chunk.n_frames, fps=spec["fps"])
first = None
frames = 0
for frame in engine.render(work):
    if first is None:
        first = time.time()
    frames += 1
end = time.time()
print(json.dumps({"process_start": process_start_time(), "start": started, "first": first,
                  "setup_seconds": engine.setup_seconds, "end": end, "frames": frames,
                  "device": engine.device}))
"""


def render_chunks(specs: list[dict], at_once: int) -> list[dict]:
    """Run one process per chunk, `at_once` at a time; their timing records."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    pending = list(specs)
    running: list[subprocess.Popen] = []
    records = []
    while pending or running:
        while pending and len(running) < at_once:
            spec = pending.pop(0)
            running.append(subprocess.Popen(
                [sys.executable, "-c", CHUNK_SCRIPT, json.dumps(spec)],
                stdout=subprocess.PIPE, text=True, env=env,
            ))
        for proc in list(running):
            if proc.poll() is not None:
                out, _ = proc.communicate()
                if proc.returncode != 0:
                    raise RuntimeError(f"chunk process failed (exit {proc.returncode})")
                records.append(json.loads(out.strip().splitlines()[-1]))
                running.remove(proc)
        time.sleep(0.02)
    return records


def stage(records: list[dict]) -> dict:
    """Lip-sync stage wall time (first process start to last end) and the share of the chunk
    processes' time spent before their first frame."""
    starts = [r["process_start"] or r["start"] for r in records]
    wall = max(r["end"] for r in records) - min(starts)
    before = sum((r["first"] or r["end"]) - s for r, s in zip(records, starts, strict=True))
    whole = sum(r["end"] - s for r, s in zip(records, starts, strict=True))
    return {"wall_seconds": round(wall, 2), "overhead_share": round(before / whole, 3),
            "frames": sum(r["frames"] for r in records), "device": records[0]["device"]}


def part_wav2lip_jobs(args, deadline: float) -> list[dict]:
    import numpy as np
    import wav2lip as w2l_bench

    from vestnik.chunks import plan_chunks

    rows = []
    seconds_list = [4.0] if args.quick else [30.0, 60.0]
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        checkpoint = w2l_bench.make_checkpoint(folder)
        for seconds in seconds_list:
            audio = w2l_bench.speech_like(seconds)
            audio_path = folder / f"speech_{seconds:g}.npy"
            np.save(audio_path, audio)
            plan = plan_chunks(audio, w2l_bench.RATE, w2l_bench.FPS, workers=3, min_seconds=1.0)
            row = {"speech_seconds": seconds, "chunks": len(plan)}
            rows.append(row)
            for slots in (1, 3):
                if time.time() > deadline:
                    return rows
                gpu = {"devices": [0] if args.device.startswith("cuda") else "auto",
                       "slots_per_device": 3, "lock_dir": str(folder / f"locks_{slots}")}
                specs = [{"chunk": {k: getattr(c, k) for k in c.__dataclass_fields__},
                          "audio": str(audio_path), "rate": w2l_bench.RATE,
                          "checkpoint": str(checkpoint), "gpu": gpu, "fps": w2l_bench.FPS,
                          "avatar": str(ROOT / "resources" / "avatar.png"),
                          "batch": 8 if args.quick else args.gpu_batch} for c in plan]
                row[f"gpu={slots}"] = stage(render_chunks(specs, slots))
            row["lipsync_ratio"] = round(
                row["gpu=1"]["wall_seconds"] / row["gpu=3"]["wall_seconds"], 2
            )
            print(json.dumps(row), flush=True)
    return rows


def part_hifigan(args, deadline: float) -> list[dict]:
    import torch

    from vestnik.vocoder.models import GENERATOR_CONFIGS, Generator

    device = args.device
    seconds = 2.0 if args.quick else 10.0
    frames = int(seconds * 22050 / 256)
    audio_seconds = frames * 256 / 22050
    torch.backends.cudnn.benchmark = True
    rows = []
    for name in ("v1", "v2", "v3"):
        torch.manual_seed(0)
        generator = Generator.from_config(GENERATOR_CONFIGS[name]).remove_weight_norm()
        generator = generator.eval().to(device)
        mel = torch.randn(1, 80, frames, device=device) - 5.0
        precisions = ["fp32"] if device == "cpu" else ["fp32", "bf16"]
        for precision in precisions:
            def call(precision=precision, generator=generator, mel=mel):
                with torch.inference_mode(), torch.autocast(
                    device.split(":")[0], dtype=torch.bfloat16, enabled=precision == "bf16"
                ):
                    return generator(mel)

            part_end = min(deadline, time.time() + (deadline - time.time()) / 3)
            best, median = timed_calls(call, device, part_end)
            row = {"generator": name, "precision": precision,
                   "x_real_time_best": round(audio_seconds / best, 1),
                   "x_real_time_median": round(audio_seconds / median, 1),
                   "paper_v100": PAPER_V100[name]}
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def part_training(args, deadline: float) -> dict:
    """bench/training.py's in-process timings: with --official, the official HiFi-GAN
    train.py step against the project's vocoder step (eager and compiled) at the same batch;
    the acoustic recipe's step, eager and compiled."""
    import training as training_bench

    results: dict = {}
    share = (deadline - time.time()) / (3 if args.official else 1)
    if args.official:
        batch = 1 if args.quick else 16
        results["vocoder_vs_official"] = training_bench.official_comparison(
            args.official, args.device, batch, 8192, seconds=max(5.0, share * 0.6),
            compile_too=not args.quick)
    model = ({"hidden": 64, "ffn_hidden": 128, "decoder_hidden": 64, "duration_hidden": 64}
             if args.quick else None)
    results["acoustic"] = training_bench.acoustic_steps(
        args.device, 2 if args.quick else 32, 160, 600,
        seconds=max(5.0, (deadline - time.time()) * 0.6), compile_too=not args.quick,
        model=model)
    return results


def part_pytest(args, deadline: float) -> dict:
    timeout = max(10, int(deadline - time.time()))
    modules = [m for m in (args.tests.split(",") if args.tests else TEST_MODULES)
               if (ROOT / m).is_file()]
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *modules]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    try:
        proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env,
                              timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        tail = (exc.stdout or b"")[-2000:]
        return {"returncode": None, "timed_out_after_s": timeout,
                "tail": tail.decode() if isinstance(tail, bytes) else tail}
    return {"returncode": proc.returncode, "modules": modules,
            "tail": (proc.stdout + proc.stderr)[-3000:]}


PARTS = {
    "wav2lip_network": part_wav2lip_network,
    "wav2lip_instances": part_wav2lip_instances,
    "wav2lip_jobs": part_wav2lip_jobs,
    "hifigan": part_hifigan,
    "training": part_training,
    "pytest": part_pytest,
}


def environment(device: str) -> dict:
    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__,
            "device": device, "cpus": os.cpu_count()}
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    cuda=torch.version.cuda)
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu for a rehearsal")
    parser.add_argument("--budget", type=float, default=450.0, help="seconds for all parts")
    parser.add_argument("--gpu-batch", type=int, default=64, help="engine batch on the GPU")
    parser.add_argument("--parts", default=",".join(PARTS), help="comma-separated subset")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (CPU rehearsal)")
    parser.add_argument("--tests", help="comma-separated test modules for the pytest part")
    parser.add_argument("--official", type=Path,
                        help="a jik876/hifi-gan checkout: the training part's official step")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "gpu_cuda.json")
    args = parser.parse_args()
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("no CUDA device visible; use --device cpu --quick for a rehearsal")
    started = time.time()
    results: dict = {"environment": environment(args.device), "budget_s": args.budget}
    chosen = [p for p in args.parts.split(",") if p]
    for i, name in enumerate(chosen):
        left = args.budget - (time.time() - started)
        share = SHARES[name] / sum(SHARES[p] for p in chosen[i:])
        deadline = time.time() + max(5.0, left * share if i < len(chosen) - 1 else left)
        print(f"== {name} (until +{deadline - started:.0f} s)", flush=True)
        part_start = time.time()
        try:
            results[name] = PARTS[name](args, deadline)
        except Exception as exc:  # record and go on: one broken part must not lose the rest
            results[name] = {"error": f"{type(exc).__name__}: {exc}",
                             "trace": traceback.format_exc()[-2000:]}
            print(results[name]["trace"], flush=True)
        results.setdefault("seconds", {})[name] = round(time.time() - part_start, 1)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    results["total_seconds"] = round(time.time() - started, 1)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: results[k] for k in ("seconds", "total_seconds")}), flush=True)


if __name__ == "__main__":
    main()
