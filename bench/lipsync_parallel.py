"""Parallel lip-sync stage: `--cores 1` against `--cores 2`, and procedural render speed.

Usage (from the repo root, on an otherwise idle machine):
    .venv/bin/python bench/lipsync_parallel.py [--job lecture] [--workers 4] [--repeats 2]

1. Renders the job's speech and chunk wavs once, then times only the lip-sync stage
   (every chunk mp4) with `snakemake --cores 1` and `--cores 2`, alternating runs, and prints the
   ratio. With N chunks on 2 cores the ideal ratio is N / ceil(N / 2): 2.0 for an even N.
   Each setting runs twice: with the run's CPU affinity set to as many CPUs as `--cores` grants
   ("pinned": the machine really has 1 or 2 cores), and unpinned. Unpinned, one chunk job already
   keeps about 1.7 cores busy (the renderer and its ffmpeg encoder run as a pipeline), so
   `--cores 1` is not a one-core run and the ratio measures little.
2. Renders frames of the procedural engine in this process pinned to one core, reporting frames
   per second and the multiple of real time at the avatar's size (25 fps video), with and
   without the still avatar's one landmark fit, and the per-frame cost of tracking a video
   avatar (`--render-only` runs just this part).
3. Overhead of each chunk job (from the timing records of the last unpinned `--cores 2` run, and
   of a short wav2lip job with random weights, `--wav2lip-seconds`, 0 to skip): interpreter start
   and imports, audio cut, avatar and engine construction, the engine's own preparation
   (weights, face boxes) and rendering, and the overhead's share of the chunk jobs' time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "src"))

from workflow_helpers import base_config, run_workflow  # noqa: E402


def time_stage(
    workdir: Path, config: dict, job: str, cores: int, chunks: int, pinned: bool
) -> float:
    """Wall time of the lip-sync stage: first chunk start to last chunk end (as in stats.json)."""
    folder = workdir / "results" / "jobs" / job / "chunks"
    targets = [f"results/jobs/{job}/chunks/{i}.mp4" for i in range(chunks)]
    for i in range(chunks):
        (folder / f"{i}.mp4").unlink(missing_ok=True)
    every_cpu = os.sched_getaffinity(0)
    if pinned:
        os.sched_setaffinity(0, set(sorted(every_cpu)[:cores]))
    try:
        result = run_workflow(workdir, config, *targets, cores=cores)
    finally:
        os.sched_setaffinity(0, every_cpu)
    if result.returncode != 0:
        sys.exit(result.stderr[-3000:])
    records = [json.loads((folder / f"{i}.json").read_text()) for i in range(chunks)]
    return max(r["end"] for r in records) - min(r["start"] for r in records)


def overhead(records: list[dict]) -> dict:
    """Seconds per chunk (mean) spent in each phase of a chunk job, and the overhead share."""
    phases = {"startup": [], "cut": [], "construct": [], "engine_setup": [], "render": []}
    for r in records:
        phases["startup"].append(r["start"] - r["process_start"])
        phases["cut"].append(r["cut_seconds"])
        phases["construct"].append(r["render_start"] - r["start"] - r["cut_seconds"])
        phases["engine_setup"].append(r["setup_seconds"])
        phases["render"].append(r["end"] - r["render_start"] - r["setup_seconds"])
    whole = sum(r["end"] - r["process_start"] for r in records)
    spent = whole - sum(phases["render"])
    row = {name: round(sum(v) / len(v), 3) for name, v in phases.items()}
    row["share"] = round(spent / whole, 3)
    return row


def wav2lip_overhead(seconds: float) -> dict:
    """Chunk-job phases of a short wav2lip job (random weights, official checkpoint format)."""
    import torch

    from vestnik.lipsync.wav2lip_model import Wav2Lip, save_checkpoint

    workdir = Path(tempfile.mkdtemp(prefix="vestnik-bench-w2l-"))
    try:
        torch.manual_seed(0)
        checkpoint = workdir / "wav2lip.pth"
        save_checkpoint(Wav2Lip(), checkpoint)
        words = " ".join(["Сегодня хорошая погода."] * max(1, int(seconds / 1.5)))
        config = base_config({"w2l": {
            "text": words, "chunks": {"workers": 1},
            "lipsync": {"engine": "wav2lip",
                        "wav2lip": {"checkpoint": str(checkpoint), "batch_size": 16}},
        }})
        result = run_workflow(workdir, config, "results/jobs/w2l/chunks/0.mp4", cores=2)
        if result.returncode != 0:
            sys.exit(result.stderr[-3000:])
        record = json.loads((workdir / "results/jobs/w2l/chunks/0.json").read_text())
        return {"frames": record["frames"], **overhead([record])}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def render_speed(seconds: float) -> dict:
    """The procedural engine on one core: frames per CPU second of rendering (no encoding),
    the still avatar's landmark fit (predictor loading included) and a video avatar's tracking
    cost per frame. CPU time, not wall time, so a busy machine does not inflate the cost."""
    import cv2
    import numpy as np

    from vestnik.avatar import load_avatar
    from vestnik.config import engine_settings
    from vestnik.lipsync import face
    from vestnik.lipsync.chunk import ChunkJob
    from vestnik.lipsync.procedural import ProceduralEngine
    from vestnik.tts import espeak

    cv2.setNumThreads(1)
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    avatar = load_avatar(ROOT / "resources" / "avatar.png")
    started = time.process_time()
    faces = face.track_faces(avatar, "dlib68")
    landmarks = time.process_time() - started
    text = (ROOT / "resources" / "texts" / "lecture.txt").read_text(encoding="utf-8")
    speech = espeak.synthesize(text[:400], **engine_settings("tts", "espeak", {}))
    fps = 25
    n_frames = min(int(seconds * fps), int(speech.duration * fps))
    chunk = ChunkJob(
        avatar, speech.samples, speech.sample_rate, 0.0, 0, n_frames, fps, speech.events, faces
    )
    engine = ProceduralEngine({}, job="bench")
    started, wall = time.process_time(), time.perf_counter()
    count = sum(1 for _ in engine.render(chunk))
    render, wall = time.process_time() - started, time.perf_counter() - wall
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "loop.avi"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (512, 512))
        for i in range(50):
            writer.write(np.roll(avatar.frame(0), i // 5, axis=1))
        writer.release()
        video = load_avatar(path)
        started = time.process_time()
        face.track_faces(video, "dlib68")
        tracking = (time.process_time() - started) / video.n_frames
    return {
        "size": f"{avatar.width}x{avatar.height}",
        "frames": count,
        "render_fps": count / render,
        "wall_fps": count / wall,
        "landmarks_s": landmarks,
        "with_landmarks_fps": count / (render + landmarks),
        "tracking_ms": 1000 * tracking,
    }


def print_render_speed(seconds: float) -> None:
    speed = render_speed(seconds)
    print(
        f"\nprocedural render, one core, {speed['size']}, {speed['frames']} frames: "
        f"{speed['render_fps']:.0f} frames/s = {speed['render_fps'] / 25:.1f}x real time at "
        f"25 fps; still-avatar landmarks {speed['landmarks_s']:.2f} s once, so "
        f"{speed['with_landmarks_fps']:.0f} frames/s = "
        f"{speed['with_landmarks_fps'] / 25:.1f}x with them; video-avatar tracking "
        f"{speed['tracking_ms']:.1f} ms a frame (CPU time of this one-core process; wall "
        f"clock {speed['wall_fps']:.0f} frames/s)"
    )
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"load during the run: {load}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job", default="lecture")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--render-only", action="store_true", help="only the render speed")
    parser.add_argument("--wav2lip-seconds", type=float, default=6.0)
    args = parser.parse_args()
    if args.render_only:
        print_render_speed(20.0)
        return

    import yaml

    default = yaml.safe_load((ROOT / "config" / "config.yaml").read_text(encoding="utf-8"))
    entry = dict(default["jobs"][args.job])
    if "text_file" in entry:
        entry["text_file"] = str(ROOT / entry["text_file"])
    entry["chunks"] = {"workers": args.workers}
    config = base_config({args.job: entry})
    workdir = Path(tempfile.mkdtemp(prefix="vestnik-bench-"))
    try:
        prep = run_workflow(workdir, config, f"results/jobs/{args.job}/chunks.tsv")
        if prep.returncode != 0:
            sys.exit(prep.stderr[-3000:])
        from vestnik.chunks import read_plan

        plan = read_plan(workdir / "results" / "jobs" / args.job / "chunks.tsv")
        speech = plan[-1].end
        print(f"job {args.job}: {speech:.1f} s of speech, {len(plan)} chunks")
        print("| CPUs | --cores | lip-sync stage wall (s), best | runs | ratio |")
        print("|---|---|---|---|---|")
        for pinned in (True, False):
            times = {1: [], 2: []}
            for _ in range(args.repeats):
                for cores in (1, 2):
                    times[cores].append(
                        time_stage(workdir, config, args.job, cores, len(plan), pinned)
                    )
            best = {cores: min(values) for cores, values in times.items()}
            for cores in (1, 2):
                cpus = cores if pinned else len(os.sched_getaffinity(0))
                runs = ", ".join(f"{v:.2f}" for v in times[cores])
                ratio = f"{best[1] / best[2]:.2f}x" if cores == 2 else ""
                print(f"| {cpus} | {cores} | {best[cores]:.2f} | {runs} | {ratio} |")
        folder = workdir / "results" / "jobs" / args.job / "chunks"
        records = [json.loads((folder / f"{i}.json").read_text()) for i in range(len(plan))]
        print(f"\nchunk-job phases, procedural, mean s per chunk: {json.dumps(overhead(records))}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    if args.wav2lip_seconds > 0:
        print(f"chunk-job phases, wav2lip (CPU, batch 16), one chunk: "
              f"{json.dumps(wav2lip_overhead(args.wav2lip_seconds))}")
    print_render_speed(20.0)


if __name__ == "__main__":
    main()
