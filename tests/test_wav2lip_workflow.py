"""End to end: a wav2lip job renders an mp4 through snakemake; a job without weights fails alone."""

import json

import pytest

torch = pytest.importorskip("torch")

from vestnik import media  # noqa: E402
from vestnik.lipsync.wav2lip_model import Wav2Lip, save_checkpoint  # noqa: E402

from .workflow_helpers import base_config, run_workflow  # noqa: E402

pytestmark = pytest.mark.slow


def test_wav2lip_job_through_snakemake(tmp_path):
    torch.manual_seed(0)
    checkpoint = tmp_path / "models" / "wav2lip.pth"
    checkpoint.parent.mkdir()
    save_checkpoint(Wav2Lip(), checkpoint)
    missing = tmp_path / "models" / "wav2lip_gan.pth"
    jobs = {
        "neural": {
            "text": "Привет, мир.",
            "chunks": {"workers": 2, "min_seconds": 0.4},
            "lipsync": {"engine": "wav2lip", "wav2lip": {"checkpoint": str(checkpoint)}},
        },
        "no_weights": {
            "text": "Привет.",
            "lipsync": {"engine": "wav2lip", "wav2lip": {"checkpoint": str(missing)}},
        },
    }
    config = base_config(jobs, lipsync={"wav2lip": {"batch_size": 8}})
    config["gpu"] = {"devices": "auto", "slots_per_device": 3, "lock_dir": str(tmp_path / "locks")}
    targets = [f"results/jobs/{job}/stats.json" for job in jobs]
    extra = ("--resources", "gpu=2", "--keep-going")
    result = run_workflow(tmp_path, config, *targets, extra=extra)
    assert result.returncode != 0, "the job without weights must fail"

    job_dir = tmp_path / "results" / "jobs" / "neural"
    final = job_dir / "final.mp4"
    assert final.is_file(), result.stderr[-3000:]
    info = media.probe(final)
    (video,) = [s for s in info["streams"] if s["type"] == "video"]
    assert video["codec"] == "h264" and (video["width"], video["height"]) == (512, 512)
    speech = media.probe(job_dir / "speech.wav", count_frames=False)
    assert abs(info["video_frames"] / 25 - speech["duration"]) <= 1 / 25
    timings = [json.loads(p.read_text()) for p in sorted((job_dir / "chunks").glob("*.json"))]
    assert len(timings) == 2
    assert {t["engine"] for t in timings} == {"wav2lip"}
    assert {t["device"] for t in timings} == {"cpu"}

    assert not (tmp_path / "results" / "jobs" / "no_weights" / "final.mp4").exists()
    log = (tmp_path / "logs" / "jobs" / "no_weights" / "tts.log").read_text()
    assert "job 'no_weights'" in log and str(missing) in log and "checkpoint not found" in log
