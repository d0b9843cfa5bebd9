"""End to end: snakemake renders real videos, and bad jobs fail alone with a clear message."""

import json
import re
import subprocess

import pytest

from vestnik import layout, media
from vestnik.chunks import read_plan

from .workflow_helpers import ROOT, SNAKEMAKE, base_config, run_workflow

FPS = 25


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """One run with a good text job, a recorded-voice job and several bad jobs."""
    workdir = tmp_path_factory.mktemp("workflow")
    text = "Здравствуйте! Сегодня 25 ноября, и в Москве плюс 3 градуса. Хорошего дня."
    voice = workdir / "voice.wav"
    proc = subprocess.run(
        [str(SNAKEMAKE.with_name("vestnik")), "tts", "--text", "Это запись голоса для проверки.",
         "--out", str(voice), "--config", str(ROOT / "config" / "config.yaml")],
        capture_output=True, text=True, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    (workdir / "voice.json").unlink()
    no_face = workdir / "wall.png"
    import cv2
    import numpy as np

    cv2.imwrite(str(no_face), np.full((240, 320, 3), 128, np.uint8))
    jobs = {
        "news": {"text": text, "chunks": {"workers": 2, "min_seconds": 1.0}},
        "voice": {"audio": str(voice)},
        "empty": {"text": "   "},
        "punctuation": {"text": "... !!! ---"},
        "no_avatar": {"text": "Привет.", "avatar": str(workdir / "missing.png")},
        "no_face": {"text": "Привет.", "avatar": str(no_face)},
        "bad_engine": {"text": "Привет.", "lipsync": {"engine": "puppet"}},
        "bad_audio": {"audio": str(workdir / "broken.wav")},
    }
    (workdir / "broken.wav").write_bytes(b"RIFF....WAVEfmt not really")
    config = base_config(jobs)
    result = run_workflow(workdir, config)
    return workdir, result, config


def job_dir(workdir, job):
    return workdir / "results" / "jobs" / job


@pytest.mark.parametrize("job", ["news", "voice"])
@pytest.mark.slow
def test_final_video(rendered, job):
    workdir, result, _ = rendered
    final = job_dir(workdir, job) / "final.mp4"
    assert final.is_file(), result.stderr[-3000:]
    info = media.probe(final)
    videos = [s for s in info["streams"] if s["type"] == "video"]
    audios = [s for s in info["streams"] if s["type"] == "audio"]
    assert len(videos) == 1 and len(audios) == 1
    (video,) = videos
    assert video["codec"] == "h264" and video["fps"] == FPS and video["pix_fmt"] == "yuv420p"
    assert (video["width"], video["height"]) == (512, 512)
    speech = media.probe(job_dir(workdir, job) / "speech.wav", count_frames=False)
    assert abs(info["duration"] - speech["duration"]) <= 1 / FPS
    assert abs(info["video_frames"] / FPS - speech["duration"]) <= 1 / FPS
    plan = read_plan(job_dir(workdir, job) / "chunks.tsv")
    assert len(list((job_dir(workdir, job) / "chunks").glob("*.mp4"))) == len(plan)


@pytest.mark.slow
def test_news_was_chunked_and_timed(rendered):
    workdir, _, _ = rendered
    plan = read_plan(job_dir(workdir, "news") / "chunks.tsv")
    assert len(plan) == 2
    stats = json.loads((job_dir(workdir, "news") / "stats.json").read_text())
    assert stats["chunks"] == 2
    seconds = stats["seconds"]
    stages = ("tts", "plan", "split", "lipsync_parallel", "merge")
    assert all(seconds[stage] > 0 for stage in stages), seconds  # every stage ran and was timed
    assert seconds["total"] == pytest.approx(sum(seconds[stage] for stage in stages), abs=0.01)
    assert stats["speedup"] > 0
    speech = json.loads((job_dir(workdir, "news") / "speech.json").read_text())
    assert any(e["type"] == "phoneme" for e in speech["events"])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("job", "message"),
    [
        ("empty", "job 'empty'.*text is empty"),
        ("punctuation", "job 'punctuation'.*nothing speakable"),
        ("no_avatar", "job 'no_avatar'.*missing.png"),
        ("no_face", "job 'no_face'.*no face"),
        ("bad_engine", "job 'bad_engine'.*puppet"),
        ("bad_audio", "job 'bad_audio'.*broken.wav"),
    ],
)
def test_bad_jobs_fail_alone_and_clearly(rendered, job, message):
    workdir, result, _ = rendered
    assert result.returncode != 0
    log = (workdir / "logs" / "jobs" / job / "tts.log").read_text(encoding="utf-8")
    assert re.search(message, log, re.S), log
    assert re.search(message, result.stderr, re.S)
    leftovers = [p.name for p in job_dir(workdir, job).glob("*")
                 if p.name != "benchmarks" and not layout.is_error_record(p)]
    assert leftovers == []
    record = json.loads((job_dir(workdir, job) / "speech.error.json").read_text(encoding="utf-8"))
    assert record["kind"] == "input" and record["rule"] == "tts"
    assert re.search(message, record["message"], re.S)


@pytest.mark.slow
def test_rerun_does_nothing(rendered):
    workdir, _, config = rendered
    targets = ("results/jobs/news/final.mp4", "results/jobs/voice/stats.json")
    result = run_workflow(workdir, config, *targets, extra=("--dry-run",))
    assert result.returncode == 0, result.stderr
    assert "Nothing to be done" in result.stdout + result.stderr


def test_lint_is_clean():
    proc = subprocess.run(
        [str(SNAKEMAKE), "--lint"], capture_output=True, text=True, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Congratulations" in proc.stdout + proc.stderr


def job_blocks(log: str) -> list[list[str]]:
    """Snakemake's log as scheduling rounds, each the `rule: wildcards` of the jobs it started."""
    rounds = []
    for part in log.split("Select jobs to execute...")[1:]:
        starts = re.findall(r"^(?:local)?(?:rule|checkpoint) (\w+):.*?wildcards: ([^\n]+)", part,
                            re.M | re.S)
        rounds.append([f"{rule}: {wildcards}" for rule, wildcards in starts])
    return rounds


@pytest.mark.slow
def test_a_jobs_chunks_start_together_after_its_gate(rendered):
    workdir, result, _ = rendered
    log = result.stdout + result.stderr
    rounds = job_blocks(log)
    gate = next(k for k, r in enumerate(rounds) if "render_gate: job=news" in r)
    renders = [k for k, r in enumerate(rounds) for job in r if job.startswith("lipsync: job=news")]
    assert renders == [gate + 1, gate + 1], rounds[gate: gate + 2]
    assert re.search(r"rule render_gate:.*?wildcards: job=news.*?threads: 2", log, re.S)


@pytest.mark.slow
@pytest.mark.parametrize(("cores", "together", "held"),
                         [(1, True, 1), (2, True, 2), (2, False, 1)])
def test_the_gate_holds_cores_only_where_chunks_can_and_should_start_together(
    rendered, cores, together, held
):
    workdir, _, config = rendered
    config = {**config, "chunks_together": together}
    # the marker is temporary, but Snakemake keeps temporary files after a run with failures
    (job_dir(workdir, "news") / "chunks" / "gate").unlink(missing_ok=True)
    result = run_workflow(workdir, config, "results/jobs/news/final.mp4", cores=cores,
                          extra=("--dry-run", "--forcerun", "render_gate"))
    assert result.returncode == 0, result.stderr
    gate = re.search(r"rule render_gate:.*?(?=\n\n)", result.stdout, re.S).group(0)
    assert ("threads: 2" in gate) is (held == 2), gate


@pytest.mark.slow
def test_other_cores_or_chunks_apart_rerun_nothing(rendered):
    workdir, _, config = rendered
    for cores, together in ((1, True), (2, False)):
        result = run_workflow(workdir, {**config, "chunks_together": together},
                              "results/jobs/news/final.mp4", cores=cores, extra=("--dry-run",))
        assert result.returncode == 0, result.stderr
        assert "Nothing to be done" in result.stdout + result.stderr, result.stdout[-2000:]
