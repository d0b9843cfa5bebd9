"""One function per pipeline stage; Snakemake scripts and the CLI both call these.

Each step reads its inputs, does its work, and writes its outputs atomically, so a killed step
never leaves a file that looks complete.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import time
from pathlib import Path

import numpy as np

from vestnik import chunks as chunking
from vestnik import media
from vestnik.config import check_settings
from vestnik.errors import VestnikError
from vestnik.io import write_json

SPEECH_RATE = 22050
log = logging.getLogger("vestnik")


def read_text_input(kind: str, value: str, job: str) -> str:
    """The job's text, from the config or from a UTF-8 text file."""
    if kind == "text":
        return value
    path = Path(value)
    if not path.is_file():
        raise VestnikError("text file not found", job=job, path=path)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        message = f"text file is not valid UTF-8 ({exc.reason})"
        raise VestnikError(message, job=job, path=path) from exc


def preflight(job: str, settings: dict, kind: str, value: str) -> None:
    """Cheap checks of everything a job needs, before any heavy work starts."""
    from vestnik.avatar import load_avatar
    from vestnik.lipsync import check_engine
    from vestnik.text.normalize import has_speakable

    check_settings(settings, job)
    avatar = load_avatar(settings["avatar"], job=job)
    check_engine(settings["lipsync"], avatar, job)
    if kind == "audio":
        if not Path(value).is_file():
            raise VestnikError("audio file not found", job=job, path=value)
        return
    text = read_text_input(kind, value, job)
    if not text.strip():
        raise VestnikError("the text is empty", job=job)
    if not has_speakable(text):
        raise VestnikError("the text has nothing speakable (no letters or numbers)", job=job)


def synthesize_job(
    job: str, settings: dict, kind: str, value: str, out_wav: str, out_json: str
) -> None:
    """Speech for a job: TTS of its text, or its own recording resampled to 22,050 Hz."""
    from vestnik.tts import synthesize
    from vestnik.tts.speech import Speech

    preflight(job, settings, kind, value)
    if kind == "audio":
        try:
            samples = media.read_audio(value, SPEECH_RATE)
        except VestnikError as exc:
            raise VestnikError(str(exc), job=job) from exc
        if not np.any(np.abs(samples) > 1e-4):
            raise VestnikError("the audio is silent", job=job, path=value)
        speech = Speech(samples, SPEECH_RATE, [], "", "recording")
    else:
        speech = synthesize(read_text_input(kind, value, job), settings["tts"], job=job)
    log.info("job %s: %.2f s of speech (%s)", job, speech.duration, speech.engine)
    speech.save(out_wav, out_json)


def plan_job(speech_wav: str, settings: dict, fps: float, out_tsv: str) -> list[chunking.Chunk]:
    """Write the chunk plan of a job's speech."""
    samples = media.read_audio(speech_wav, SPEECH_RATE)
    plan = chunking.plan_chunks(samples, SPEECH_RATE, fps, **settings["chunks"])
    chunking.write_plan(out_tsv, plan)
    log.info("planned %d chunks: %s", len(plan), [(c.start, c.end) for c in plan])
    return plan


def cut_chunk(speech_wav: str, plan_tsv: str, index: int, out_wav: str) -> None:
    """Write chunk `index`'s audio: its frames' span plus the planned context."""
    chunk = chunking.read_plan(plan_tsv)[index]
    samples = media.read_audio(speech_wav, SPEECH_RATE)
    media.write_wav(out_wav, chunking.chunk_samples(samples, SPEECH_RATE, chunk), SPEECH_RATE)


def render_chunk(
    job: str,
    settings: dict,
    fps: float,
    plan_tsv: str,
    index: int,
    chunk_wav: str,
    speech_json: str,
    out_mp4: str,
    out_timing: str,
    gpu: dict | None = None,
) -> None:
    """Render chunk `index` with the job's lip-sync engine and record when it ran.

    `gpu` is the config's `gpu:` block, for engines that take a device slot.
    """
    from vestnik.avatar import load_avatar
    from vestnik.lipsync import make_engine
    from vestnik.lipsync.chunk import ChunkJob

    started = time.time()
    chunk = chunking.read_plan(plan_tsv)[index]
    speech = json.loads(Path(speech_json).read_text(encoding="utf-8"))
    avatar = load_avatar(settings["avatar"], job=job)
    engine = make_engine(settings["lipsync"], job=job, gpu=gpu)
    work = ChunkJob(
        avatar=avatar,
        audio=media.read_audio(chunk_wav, SPEECH_RATE),
        sample_rate=SPEECH_RATE,
        audio_start=chunk.audio_start,
        start_frame=chunk.start_frame,
        n_frames=chunk.n_frames,
        fps=fps,
        events=speech["events"] or None,
    )
    with media.FrameWriter(out_mp4, avatar.width, avatar.height, fps) as writer:
        for frame in engine.render(work):
            writer.write(frame)
        if writer.frames != chunk.n_frames:
            raise VestnikError(
                f"engine rendered {writer.frames} frames, the plan says {chunk.n_frames}",
                job=job,
                path=out_mp4,
            )
    write_json(
        out_timing,
        {
            "chunk": index,
            "frames": chunk.n_frames,
            "engine": settings["lipsync"]["engine"],
            "device": getattr(engine, "device", "cpu"),
            "start": started,
            "end": time.time(),
        },
    )


def merge_job(chunk_videos: list[str], speech_wav: str, out_mp4: str) -> None:
    """Concatenate chunk videos (no re-encoding) and mux the whole speech once."""
    media.concat_with_audio([Path(p) for p in chunk_videos], speech_wav, out_mp4)


def _benchmark_seconds(path: str | os.PathLike) -> float:
    with open(path, encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return float(rows[-1]["s"])


def write_stats(
    job: str,
    benchmarks: dict[str, list[str]],
    timings: list[str],
    speech_json: str,
    out_json: str,
) -> dict:
    """Per-stage seconds (from the rules' benchmark files), chunk count and parallel speed-up.

    The lip-sync figures come from the chunks' own timing records, which leave out interpreter
    start-up: the stage's wall time runs from the first chunk's start to the last chunk's end,
    and its speed-up is the summed chunk time over that wall time, as in the original service log.
    """
    seconds = {
        stage: round(sum(_benchmark_seconds(p) for p in paths), 3)
        for stage, paths in benchmarks.items()
    }
    records = [json.loads(Path(p).read_text(encoding="utf-8")) for p in timings]
    wall = max(r["end"] for r in records) - min(r["start"] for r in records)
    summed = round(sum(r["end"] - r["start"] for r in records), 3)
    speech = json.loads(Path(speech_json).read_text(encoding="utf-8"))
    stats = {
        "job": job,
        "speech_seconds": speech["duration"],
        "chunks": len(records),
        "engine": records[0]["engine"],
        "seconds": {
            **{k: seconds[k] for k in ("tts", "plan", "split")},
            "lipsync_parallel": round(wall, 3),
            "lipsync_sum_of_chunks": summed,
            "merge": seconds["merge"],
        },
        "speedup": round(summed / wall, 3) if wall > 0 else None,
    }
    stage_total = sum(v for k, v in stats["seconds"].items() if k != "lipsync_sum_of_chunks")
    stats["seconds"]["total"] = round(stage_total, 3)
    write_json(out_json, stats)
    return stats
