"""Killed, repeated and concurrent workflow runs lose nothing and leave no file that looks done.

One clean reference run (in a folder whose path has spaces and Cyrillic letters) is compared
with a run that is SIGKILLed three times (during TTS, during chunk rendering, and while the
merged video waits to be renamed into place) and with a run that overlaps a second snakemake on
the same folder: every final file must come out identical to the reference.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import soundfile as sf

from vestnik import media
from vestnik.chunks import total_frames
from vestnik.io import temp_name_pattern
from vestnik.provenance import config_hash, sha256_file

from .workflow_helpers import (
    AVATAR,
    Run,
    base_config,
    planned_jobs,
    process_tree,
    run_workflow,
    temp_files,
)

pytestmark = pytest.mark.slow

JOBS = ("a", "b")
TARGETS = tuple(
    f"results/jobs/{job}/{name}"
    for job in JOBS
    for name in ("final.mp4", "stats.json", "provenance.json")
)
FPS = 25


def job_config(workdir: Path) -> dict:
    """Two one-sentence jobs; job b reads a text file and an avatar with Cyrillic names."""
    text_file = workdir / "новости дня.txt"
    text_file.write_text("Добрый вечер. Новостей пока нет.\n", encoding="utf-8")
    avatar = workdir / "лицо ведущего.png"
    shutil.copyfile(AVATAR, avatar)
    return base_config(
        {
            "a": {
                "text": "Здравствуйте! Сегодня хорошая погода, и мы идём гулять.",
                "chunks": {"workers": 2, "min_seconds": 1.0},
            },
            "b": {"text_file": str(text_file), "avatar": str(avatar)},
        }
    )


def new_workdir(tmp_path_factory, name: str) -> Path:
    workdir = tmp_path_factory.mktemp(name) / "папка с пробелами" / "рабочая папка"
    workdir.mkdir(parents=True)
    return workdir


def reverse_keys(value: object) -> object:
    """`value` with every mapping's keys in reverse order."""
    if isinstance(value, dict):
        return {key: reverse_keys(value[key]) for key in reversed(list(value))}
    if isinstance(value, list):
        return [reverse_keys(item) for item in value]
    return value


# ------------------------------------------------------------------------------------------------
# What a good result is.


def decoded_digest(path: Path, stream: str) -> str:
    """SHA-256 of a file's decoded video frames (BGR) or audio samples (16-bit)."""
    if stream == "video":
        fmt = ["-map", "0:v:0", "-f", "rawvideo", "-pix_fmt", "bgr24"]
    else:
        fmt = ["-map", "0:a:0", "-f", "s16le", "-ac", "1"]
    proc = subprocess.run(
        [media.ffmpeg_exe(), "-v", "error", "-nostdin", "-i", str(path), *fmt, "-"],
        capture_output=True, check=True,
    )
    assert proc.stdout
    return hashlib.sha256(proc.stdout).hexdigest()


def check_job(workdir: Path, job: str) -> dict:
    """A job's final video is complete and matches its speech; return comparable digests."""
    folder = workdir / "results" / "jobs" / job
    speech = sf.info(folder / "speech.wav")
    info = media.probe(folder / "final.mp4")
    assert info["video_frames"] == total_frames(speech.frames, speech.samplerate, FPS)
    assert abs(info["duration"] - speech.duration) <= 1 / FPS
    stats = json.loads((folder / "stats.json").read_text(encoding="utf-8"))
    record = json.loads((folder / "provenance.json").read_text(encoding="utf-8"))
    assert record["config_sha256"] == config_hash(record["config"])
    assert record["outputs"] == [
        {
            "path": f"results/jobs/{job}/final.mp4",
            "bytes": (folder / "final.mp4").stat().st_size,
            "sha256": sha256_file(folder / "final.mp4"),
        }
    ]
    for entry in record["inputs"]:
        path = Path(entry["path"]) if Path(entry["path"]).is_absolute() else workdir / entry["path"]
        assert entry["sha256"] == sha256_file(path)
    return {
        "speech": sha256_file(folder / "speech.wav"),
        "frames": decoded_digest(folder / "final.mp4", "video"),
        "audio": decoded_digest(folder / "final.mp4", "audio"),
        "chunks": stats["chunks"],
        "inputs": sorted(e["sha256"] for e in record["inputs"]),
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A clean, uninterrupted run: (workdir, config, digests per job)."""
    workdir = new_workdir(tmp_path_factory, "reference")
    config = job_config(workdir)
    result = run_workflow(workdir, config, *TARGETS)
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir, config, {job: check_job(workdir, job) for job in JOBS}


def test_reference_run_in_a_path_with_spaces_and_cyrillic(reference):
    workdir, config, digests = reference
    assert " " in str(workdir) and "папка" in str(workdir)
    assert digests["a"]["chunks"] == 2
    record = json.loads((workdir / "results/jobs/b/provenance.json").read_text(encoding="utf-8"))
    assert record["config"]["input"] == {"text_file": config["jobs"]["b"]["text_file"]}
    recorded = {Path(e["path"]).name for e in record["inputs"]}
    assert recorded == {"новости дня.txt", "лицо ведущего.png", "speech.wav"}
    assert record["software"]["vestnik"]
    assert record["software"]["ffmpeg"].startswith("ffmpeg version")
    assert temp_files(workdir) == []


def test_second_run_does_nothing(reference):
    workdir, config, _ = reference
    outputs = [workdir / t for t in TARGETS]
    before = [p.stat().st_mtime_ns for p in outputs]
    result = run_workflow(workdir, config, *TARGETS)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Nothing to be done" in result.stdout + result.stderr
    assert [p.stat().st_mtime_ns for p in outputs] == before


def test_reordered_config_reruns_nothing(reference):
    workdir, config, _ = reference
    reordered = reverse_keys(config)
    assert list(reordered) == list(reversed(list(config)))
    dry = Run(workdir, reordered, *TARGETS, extra=("--dry-run",))
    assert dry.finish() == 0, dry.text()[-3000:]
    assert "Nothing to be done" in dry.text()


def test_changing_one_jobs_text_reruns_only_that_job(reference):
    workdir, config, _ = reference
    changed = json.loads(json.dumps(config))
    changed["jobs"]["a"]["text"] = "Здравствуйте! Сегодня идёт дождь."
    dry = run_workflow(workdir, changed, *TARGETS, extra=("--dry-run",))
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert planned_jobs(dry.stdout + dry.stderr) == {"a"}

    text_file = Path(config["jobs"]["b"]["text_file"])
    stamp = text_file.stat()
    original = text_file.read_text(encoding="utf-8")
    try:
        text_file.write_text("Добрый вечер. Есть новости.\n", encoding="utf-8")
        dry = run_workflow(workdir, config, *TARGETS, extra=("--dry-run",))
        assert dry.returncode == 0, dry.stderr[-3000:]
        assert planned_jobs(dry.stdout + dry.stderr) == {"b"}
    finally:
        text_file.write_text(original, encoding="utf-8")
        os.utime(text_file, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    dry = run_workflow(workdir, config, *TARGETS, extra=("--dry-run",))
    assert "Nothing to be done" in dry.stdout + dry.stderr


def test_killed_three_times_then_complete_and_identical(tmp_path_factory, reference):
    _, _, expected = reference
    workdir = new_workdir(tmp_path_factory, "killed")
    config = job_config(workdir)
    jobs = workdir / "results" / "jobs"
    logs = workdir / "logs" / "jobs"

    # 1. During TTS: job a's step has started (its log exists) but has written no speech yet.
    run = Run(workdir, config, *TARGETS)
    run.wait_for(lambda: (logs / "a" / "tts.log").exists(), "TTS start")
    run.kill()
    assert not (jobs / "a" / "speech.wav").exists()
    assert not (jobs / "a" / "speech.json").exists()

    # A killed snakemake leaves its lock: the next run refuses to start and says what to do.
    locked = run_workflow(workdir, config, *TARGETS)
    assert locked.returncode != 0
    assert "Directory cannot be locked" in locked.stderr and "--unlock" in locked.stderr
    assert run_workflow(workdir, config, extra=("--unlock",)).returncode == 0

    # 2. During chunk rendering: a chunk's mp4 is half encoded in its temporary file.
    run = Run(workdir, config, *TARGETS)
    chunk_dir = jobs / "a" / "chunks"

    def encoding() -> list[Path]:
        return [p for p in temp_files(chunk_dir) if p.name.endswith(".tmp.mp4")]

    run.wait_for(lambda: chunk_dir.is_dir() and encoding(), "a chunk being encoded")
    run.kill()
    partials = encoding()  # a job's chunks render side by side: one or more at the kill
    assert partials
    for partial in partials:
        chunk = partial.name.split(".")[1]
        assert temp_name_pattern(chunk_dir / f"{chunk}.mp4").fullmatch(partial.name)
        assert not (chunk_dir / f"{chunk}.mp4").exists()
    assert run_workflow(workdir, config, extra=("--unlock",)).returncode == 0

    # 3. At the merge: the joined video is complete but not yet renamed to final.mp4.
    run = Run(workdir, config, *TARGETS, env={"VESTNIK_PAUSE_AT": "final.mp4"})
    cleaned = [f"'results/jobs/a/chunks/{partial.name}'" for partial in partials]

    def paused_merge() -> list[str]:
        return [
            job for job in JOBS
            if (logs / job / "merge.log").exists()
            and "VESTNIK_PAUSE_AT" in (logs / job / "merge.log").read_text(encoding="utf-8")
        ]

    run.wait_for(paused_merge, "a paused merge")
    run.kill()
    merged = paused_merge()[0]
    assert not (jobs / merged / "final.mp4").exists()
    (waiting,) = [p for p in temp_files(jobs / merged) if p.suffix == ".mp4"]
    assert media.probe(waiting)["video_frames"] > 0  # complete, yet not taken as done
    assert run_workflow(workdir, config, extra=("--unlock",)).returncode == 0

    # 4. A plain rerun finishes everything; leftovers of the killed writers are gone.
    final = Run(workdir, config, *TARGETS)
    assert final.finish() == 0, final.text()[-4000:]
    assert f"'results/jobs/{merged}/{waiting.name}'" in final.text()
    reported = run.text() + final.text()
    assert "left by a killed run:" in reported
    assert all(name in reported for name in cleaned)
    assert temp_files(workdir) == []
    assert "Params have changed" not in final.text()
    for job in JOBS:
        got = check_job(workdir, job)
        assert {k: got[k] for k in ("speech", "frames", "audio", "chunks")} == {
            k: expected[job][k] for k in ("speech", "frames", "audio", "chunks")
        }, job
    assert sha256_file(jobs / "a" / "final.mp4") == sha256_file(
        reference[0] / "results" / "jobs" / "a" / "final.mp4"
    )


def test_concurrent_run_is_refused_and_the_first_finishes_identical(tmp_path_factory, reference):
    """A second snakemake on a busy folder stops with the lock error and writes nothing."""
    _, _, expected = reference
    workdir = new_workdir(tmp_path_factory, "concurrent")
    config = job_config(workdir)
    first = Run(workdir, config, *TARGETS)
    locks = workdir / ".snakemake" / "locks"
    run_started = workdir / "logs" / "jobs" / "a" / "tts.log"
    first.wait_for(lambda: locks.is_dir() and any(locks.iterdir()) and run_started.exists(),
                   "the first run's lock")
    tree = process_tree(first.proc.pid)
    for pid in tree:  # freeze the first run so that it certainly holds the lock meanwhile
        os.kill(pid, signal.SIGSTOP)
    try:
        files_before = sorted(p for p in (workdir / "results").rglob("*"))
        second = run_workflow(workdir, config, *TARGETS)
        files_after = sorted(p for p in (workdir / "results").rglob("*"))
    finally:
        for pid in tree:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
    assert second.returncode != 0
    assert "LockException" in second.stderr
    assert "Directory cannot be locked" in second.stderr
    assert "Execute" not in second.stdout + second.stderr
    assert files_after == files_before
    assert first.finish() == 0, first.text()[-4000:]
    for job in JOBS:
        got = check_job(workdir, job)
        assert {k: got[k] for k in ("speech", "frames", "audio")} == {
            k: expected[job][k] for k in ("speech", "frames", "audio")
        }, job
