"""One function per pipeline stage; Snakemake scripts and the CLI both call these.

Each step reads its inputs, does its work, and writes its outputs atomically, so a killed step
never leaves a file that looks complete.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from vestnik import media
from vestnik.config import check_settings
from vestnik.errors import VestnikError
from vestnik.io import read_tsv, write_json

if TYPE_CHECKING:
    from vestnik.chunks import Chunk

SPEECH_RATE = 22050
AUDIBLE_OVERSHOOT = 1.01
"""A recording peaking above this many times full scale is scaled with a warning; below it
(resampling a full-scale recording overshoots by a fraction of a percent) without one."""
log = logging.getLogger("vestnik")


def _check_text_size(text: str, limit: int, job: str, path: str | None) -> None:
    if len(text) > limit:
        raise VestnikError(
            f"the text has {len(text):,} characters, more than limits.max_text_chars "
            f"({limit:,}); split it into several jobs or raise the limit",
            job=job,
            path=path,
        )


def _check_speech_length(seconds: float | None, limit: float, job: str, path: object) -> None:
    if seconds is not None and seconds > limit:
        raise VestnikError(
            f"the speech lasts {seconds:,.0f} s ({seconds / 3600:.2f} h), longer than "
            f"limits.max_speech_seconds ({limit:,.0f} s); cut it into several jobs or raise "
            "the limit",
            job=job,
            path=path,
        )


def _warn_foreign_script(text: str, job: str) -> None:
    """Warn when most letters are neither Cyrillic nor Latin: the Russian voice spells them."""
    import unicodedata

    letters = [ch for ch in text if ch.isalpha()]
    foreign = [
        ch for ch in letters if not unicodedata.name(ch, "").startswith(("CYRILLIC", "LATIN"))
    ]
    if letters and len(foreign) * 2 > len(letters):
        log.warning(
            "job %s: %d of %d letters are neither Cyrillic nor Latin (e.g. %r); the Russian "
            "voice reads them as character names",
            job, len(foreign), len(letters), "".join(foreign[:5]),
        )


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


def preflight(job: str, settings: dict, kind: str, value: str,
              transcript: tuple[str, str] | None = None) -> None:
    """Cheap checks of everything a job needs, before any heavy work starts; `transcript` is
    a re-voiced recording's (text or text_file, value), checked as a text input is."""
    from vestnik.avatar import load_avatar
    from vestnik.lipsync import check_engine, faces_file

    settings = check_settings(settings, job)
    limits = settings["limits"]
    avatar = load_avatar(settings["avatar"], job=job)
    lipsync = settings["lipsync"]
    check_engine(lipsync, avatar, job, faces_file(lipsync, settings["avatar"]))
    check_speech_input(job, limits, kind, value, transcript)


def check_speech_input(job: str, limits: dict, kind: str, value: str,
                       transcript: tuple[str, str] | None = None) -> None:
    """The speech part of `preflight`: the text, or the recording (and its transcript)."""
    if kind == "audio":
        if not Path(value).is_file():
            raise VestnikError("audio file not found", job=job, path=value)
        try:
            seconds = media.audio_duration(value)
        except VestnikError as exc:
            raise VestnikError(str(exc), job=job) from exc
        _check_speech_length(seconds, limits["max_speech_seconds"], job, value)
        shortfall = media.wav_shortfall(value)
        if shortfall:
            log.warning(
                "job %s, file '%s': the WAV header claims %s s but the file holds only %.2f s "
                "(cut short while copying or recording?); using what it holds",
                job, value, f"{shortfall[0]:,.2f}", shortfall[1],
            )
        if transcript is not None:
            _check_text_input(job, limits, *transcript, what="the transcript")
        return
    _check_text_input(job, limits, kind, value)


def _check_text_input(job: str, limits: dict, kind: str, value: str,
                      what: str = "the text") -> None:
    from vestnik.text.encoding import encoding_problem
    from vestnik.text.normalize import has_speakable

    path = value if kind == "text_file" else None
    size = Path(path).stat().st_size if path and Path(path).is_file() else 0
    if size > 4 * limits["max_text_chars"]:  # UTF-8 needs at most 4 bytes a character
        raise VestnikError(
            f"the text file has {size:,} bytes, more than limits.max_text_chars "
            f"({limits['max_text_chars']:,} characters) can hold; split it into several jobs "
            "or raise the limit",
            job=job,
            path=path,
        )
    text = read_text_input(kind, value, job)
    problem = encoding_problem(text)
    if problem:
        raise VestnikError(problem, job=job, path=path)
    _check_text_size(text, limits["max_text_chars"], job, path)
    if not text.strip():
        raise VestnikError(f"{what} is empty", job=job, path=path)
    if not has_speakable(text):
        raise VestnikError(f"{what} has nothing speakable (no letters or numbers)", job=job,
                           path=path)
    _warn_foreign_script(text, job)


def plan_revoice_job(job: str, settings: dict, audio: str, transcript: tuple[str, str],
                     out_plan: str, out_recording: str, threads: int = 1) -> dict:
    """Step 1 of re-voicing a recording (vestnik.revoice): its pieces and their words."""
    from vestnik.revoice import plan_revoicing, read_transcript

    settings = check_settings(settings, job)
    preflight(job, settings, "audio", audio, transcript)
    text = read_transcript(*transcript, job)
    return plan_revoicing(job, audio, text, settings["tts"], settings["revoice"], out_plan,
                          out_recording, threads=threads)


def revoice_piece_job(job: str, settings: dict, plan: str, recording: str, index: int,
                      out_wav: str, out_json: str, gpu: dict | None = None) -> dict:
    """Step 2 of re-voicing: one piece aligned and spoken (its own Snakemake job)."""
    from vestnik.revoice import revoice_piece

    settings = check_settings(settings, job)
    return revoice_piece(job, plan, recording, index, settings["tts"], settings["revoice"],
                         out_wav, out_json, gpu=gpu)


def synthesize_job(
    job: str,
    settings: dict,
    kind: str,
    value: str,
    out_wav: str,
    out_json: str,
    gpu: dict | None = None,
    pieces: tuple[str, list[str], list[str]] | None = None,
) -> None:
    """Speech for a job: TTS of its text, its own recording resampled to 22,050 Hz, or, with
    `pieces` (plan, piece wavs, piece records), its re-voiced recording joined.

    `gpu` is the config's `gpu:` block, for TTS engines that take a device slot.
    """
    from vestnik.tts import synthesize
    from vestnik.tts.speech import Speech

    settings = check_settings(settings, job)
    if pieces is not None:
        from vestnik.revoice import join_pieces

        join_pieces(job, *pieces, settings["revoice"], out_wav, out_json)
        return
    preflight(job, settings, kind, value)
    if kind == "audio":
        try:
            samples = media.read_audio(value, SPEECH_RATE)
        except VestnikError as exc:
            raise VestnikError(str(exc), job=job) from exc
        peak = float(abs(samples).max())
        if peak <= 1e-4:
            raise VestnikError("the audio is silent", job=job, path=value)
        if peak > 1.0:  # float audio, or resampling overshoot of a full-scale recording
            if peak > AUDIBLE_OVERSHOOT:
                log.warning(
                    "job %s, file '%s': the audio peaks at %.2f times full scale (%+.1f dB); "
                    "scaled down to fit instead of clipped", job, value, peak,
                    20 * math.log10(peak),
                )
            samples = samples / peak
        speech = Speech(samples, SPEECH_RATE, [], "", "recording")
    else:
        text = read_text_input(kind, value, job)
        speech = synthesize(text, settings["tts"], job=job, gpu=gpu)
        _check_speech_length(speech.duration, settings["limits"]["max_speech_seconds"], job, None)
    log.info("job %s: %.2f s of speech (%s)", job, speech.duration, speech.engine)
    speech.save(out_wav, out_json)


def plan_job(
    speech_wav: str, settings: dict, fps: float, out_tsv: str, speech_json: str | None = None
) -> list[Chunk]:
    """Write the chunk plan of a job's speech; with `speech_json`, first check that the wav is
    the one those timings were written for."""
    from vestnik import chunks as chunking

    if speech_json:
        from vestnik.tts.speech import check_pair

        check_pair(speech_wav, speech_json)
    samples = media.read_audio(speech_wav, SPEECH_RATE)
    plan = chunking.plan_chunks(samples, SPEECH_RATE, fps, **settings["chunks"])
    chunking.write_plan(out_tsv, plan)
    log.info("planned %d chunks: %s", len(plan), [(c.start, c.end) for c in plan])
    return plan


def render_chunk(
    job: str,
    settings: dict,
    fps: float,
    plan_tsv: str,
    index: int,
    speech_wav: str,
    speech_json: str,
    out_mp4: str,
    out_timing: str,
    gpu: dict | None = None,
    threads: int = 1,
    faces_json: str | None = None,
) -> None:
    """Render chunk `index` with the job's lip-sync engine and record when it ran.

    The chunk's audio (its frames' span plus the planned context) is cut from the job's speech
    here, not by a job of its own: that would cost a process start for a few milliseconds of
    work. `gpu` is the config's `gpu:` block, for engines that take a device slot. `threads`
    caps OpenCV, PyTorch and the encoder, so that N chunk jobs side by side use N cores.
    `faces_json` is the avatar's faces file (`fit_faces`); without it the faces are found here.

    The timing record says where the chunk's time went: `process_start` (the interpreter's
    start), `start` (this step, imports done), `cut_seconds`, `render_start` (audio, avatar and
    engine ready), `setup_seconds` (the engine's own preparation: weights, face detection) and
    `end`.
    """
    from vestnik import chunks as chunking
    from vestnik.avatar import load_avatar
    from vestnik.lipsync import job_faces, make_engine
    from vestnik.lipsync.chunk import ChunkJob

    started = time.time()
    limit_threads(threads)
    chunk = chunking.read_plan(plan_tsv)[index]
    audio = chunking.chunk_samples(media.read_audio(speech_wav, SPEECH_RATE), SPEECH_RATE, chunk)
    cut_seconds = time.time() - started
    speech = json.loads(Path(speech_json).read_text(encoding="utf-8"))
    avatar = load_avatar(settings["avatar"], job=job)
    engine = make_engine(settings["lipsync"], job=job, gpu=gpu)
    work = ChunkJob(
        avatar=avatar,
        audio=audio,
        sample_rate=SPEECH_RATE,
        audio_start=chunk.audio_start,
        start_frame=chunk.start_frame,
        n_frames=chunk.n_frames,
        fps=fps,
        events=speech["events"] or None,
        faces=job_faces(settings["lipsync"], avatar, job, faces_json),
    )
    render_start = time.time()
    with media.FrameWriter(out_mp4, avatar.width, avatar.height, fps, threads) as writer:
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
            "process_start": process_start_time(),
            "start": started,
            "cut_seconds": round(cut_seconds, 4),
            "render_start": render_start,
            "setup_seconds": round(getattr(engine, "setup_seconds", 0.0), 4),
            "end": time.time(),
        },
    )


def fit_faces(avatar_path: str, model: str, out_json: str, jobs: list[str]) -> None:
    """Find an avatar's faces once (one fit for a still, tracked for a video) for every chunk
    of every job in `jobs` that shows it; bad faces fail here, before any chunk renders."""
    from vestnik.avatar import load_avatar
    from vestnik.lipsync.face import track_faces, write_faces

    names = ", ".join(jobs) or None
    avatar = load_avatar(avatar_path, job=names)
    started = time.perf_counter()
    faces = track_faces(avatar, model, job=names)
    seconds = time.perf_counter() - started
    write_faces(out_json, avatar, model, faces)
    log.info(
        "%s: %d frame(s), %d with a face, %s landmarks in %.2f s (%.1f ms a frame)",
        avatar_path, avatar.n_frames, sum(f is not None for f in faces), model, seconds,
        1000 * seconds / avatar.n_frames,
    )


def process_start_time() -> float | None:
    """When this process started (epoch seconds, 10 ms resolution), or None off Linux."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[19])  # field 22, starttime: clock ticks after boot
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    return time.time() - age


def limit_threads(threads: int) -> None:
    """Cap the thread pools of OpenCV and (when loaded) PyTorch in this process."""
    import cv2

    cv2.setNumThreads(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def merge_job(
    chunk_videos: list[str],
    speech_wav: str,
    out_mp4: str,
    out_provenance: str | None = None,
    record: tuple[dict, list[str], list[str]] | None = None,
) -> None:
    """Concatenate chunk videos (no re-encoding) and mux the whole speech once.

    With `out_provenance`, a provenance record is written beside the video: `record` is the
    job's (config block, input files, model files), see vestnik.provenance.
    """
    media.concat_with_audio([Path(p) for p in chunk_videos], speech_wav, out_mp4)
    if out_provenance:
        from vestnik.provenance import write_provenance

        block, inputs, models = record or ({}, [], [])
        write_provenance(out_provenance, block, [*inputs, speech_wav], models, [out_mp4])


def _benchmark_seconds(path: str | os.PathLike) -> float:
    return float(read_tsv(path)[-1]["s"])


def write_stats(
    job: str,
    benchmarks: dict[str, list[str]],
    timings: list[str],
    speech_json: str,
    out_json: str,
    merge_seconds: float,
) -> dict:
    """Per-stage seconds, chunk count, parallel speed-up and start-up overhead of one job.

    tts and plan come from their rules' benchmark files (process start-up included; a
    re-voiced recording's tts is its plan, pieces and join summed); `split` is
    the chunks' audio cutting and `merge` the merge step's own time. The lip-sync figures come
    from the chunks' timing records: the stage's wall time runs from the first chunk's start to
    the last chunk's end, and its speed-up is the summed chunk time over that wall time, as in
    the original service log. `overhead` is what the chunk jobs spent before rendering:
    interpreter start and imports, then audio, avatar and engine set-up (weights, face boxes).
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
            **{k: seconds[k] for k in ("tts", "plan")},
            "split": round(sum(r.get("cut_seconds", 0.0) for r in records), 3),
            "lipsync_parallel": round(wall, 3),
            "lipsync_sum_of_chunks": summed,
            "merge": round(merge_seconds, 3),
        },
        "speedup": round(summed / wall, 3) if wall > 0 else None,
        "overhead": chunk_overhead(records),
        "lipsync_spans": [[r["start"], r["end"]] for r in records],
    }
    stage_total = sum(v for k, v in stats["seconds"].items() if k != "lipsync_sum_of_chunks")
    stats["seconds"]["total"] = round(stage_total, 3)
    write_json(out_json, stats)
    return stats


def chunk_overhead(records: list[dict]) -> dict:
    """Seconds the chunk jobs spent before rendering, and their share of the jobs' whole time.

    `startup`: interpreter start to the step (Python, imports); `setup`: the step to the first
    frame's work (audio, avatar, engine construction and its own preparation).
    """
    starts = [r.get("process_start") for r in records]
    if any(s is None for s in starts) or any("render_start" not in r for r in records):
        return {"startup_seconds": None, "setup_seconds": None, "share": None}
    startup = sum(r["start"] - s for r, s in zip(records, starts, strict=True))
    setup = sum(r["render_start"] - r["start"] + r.get("setup_seconds", 0.0) for r in records)
    whole = sum(r["end"] - s for r, s in zip(records, starts, strict=True))
    return {
        "startup_seconds": round(startup, 3),
        "setup_seconds": round(setup, 3),
        "share": round((startup + setup) / whole, 3) if whole > 0 else None,
    }


def finish_job(
    job: str,
    chunk_videos: list[str],
    speech_wav: str,
    out_mp4: str,
    out_provenance: str,
    record: tuple[dict, list[str], list[str]],
    benchmarks: dict[str, list[str]],
    timings: list[str],
    speech_json: str,
    out_stats: str,
) -> dict:
    """Merge the chunks (see merge_job), then write the job's stats: one process for both."""
    started = time.perf_counter()
    merge_job(chunk_videos, speech_wav, out_mp4, out_provenance, record)
    return write_stats(
        job, benchmarks, timings, speech_json, out_stats, time.perf_counter() - started
    )
