"""Hostile edges of the pipeline: text that is not valid Unicode, a broken config file, audio
whose header lies or that is louder than full scale, chunk videos that do not join, a full disk
under ffmpeg, and results deleted or edited by hand between runs (docs/reliability.md lists each
case and its message)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vestnik import media
from vestnik.errors import VestnikError

from .test_reliability_inputs import SR, refused, synthesize
from .test_reliability_runs import decoded_digest, temp_files
from .workflow_helpers import ROOT, SNAKEMAKE, base_config, run_workflow

LONE_SURROGATE = "Привет \ud83d мир."
BROKEN_YAML = "defaults:\n  fps: 25\njobs:\n  a: {text: [unclosed\n"

# ------------------------------------------------------------------------------------------------
# Text that cannot be encoded as UTF-8


def test_lone_surrogate_is_refused_by_the_tts_step(tmp_path):
    message = refused(tmp_path, "text", LONE_SURROGATE, r"not valid Unicode")
    assert "character 8 of 13 is a lone surrogate U+D83D" in message
    assert "after 'Привет '" in message


def test_lone_surrogate_fails_its_job_in_the_workflow_before_any_work(tmp_path):
    config = base_config({"bad": {"text": LONE_SURROGATE}})
    proc = run_workflow(tmp_path, config, "results/jobs/bad/final.mp4")
    assert proc.returncode != 0
    assert "job 'bad': the text is not valid Unicode" in proc.stderr, proc.stderr[-3000:]
    assert "(rule tts)" in proc.stderr and "UnicodeEncodeError" not in proc.stderr
    assert not (tmp_path / "results" / "jobs" / "bad" / "speech.wav").exists()


# ------------------------------------------------------------------------------------------------
# A config file with a YAML syntax error


def test_broken_config_is_one_message_naming_file_and_line_in_the_workflow(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(BROKEN_YAML, encoding="utf-8")
    proc = subprocess.run(
        [str(SNAKEMAKE), "--snakefile", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
         "--cores", "1", "-n"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr  # snakemake prints a Snakefile's error on stdout
    assert "file 'config/config.yaml': not valid YAML: line 5, column 1" in output, output


# ------------------------------------------------------------------------------------------------
# Recordings


def test_wav_whose_header_claims_more_than_it_holds_is_warned_about(tmp_path, caplog):
    """A copy cut short: the header says an hour, the file holds two seconds."""
    path = tmp_path / "cut.wav"
    claimed = 3600 * SR * 2
    header = (
        b"RIFF" + struct.pack("<I", 36 + claimed) + b"WAVE"
        + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, SR, SR * 2, 2, 16)
        + b"data" + struct.pack("<I", claimed)
    )
    pcm = (0.3 * np.sin(np.arange(2 * SR) * 0.05) * 32767).astype("<i2").tobytes()
    path.write_bytes(header + pcm)
    caplog.set_level(logging.WARNING, logger="vestnik")
    speech = synthesize(tmp_path, "audio", str(path))
    assert speech["duration"] == pytest.approx(2.0, abs=1e-3)
    assert "cut.wav" in caplog.text and "header claims 3,600.00 s" in caplog.text
    assert "holds only 2.00 s" in caplog.text
    caplog.clear()
    whole = tmp_path / "whole.wav"
    sf.write(whole, 0.3 * np.sin(np.arange(SR) * 0.05), SR)
    synthesize(tmp_path, "audio", str(whole))
    assert "header claims" not in caplog.text


def test_float_audio_louder_than_full_scale_is_scaled_not_clipped(tmp_path, caplog):
    path = tmp_path / "loud.wav"
    wave = 3.0 * np.sin(2 * np.pi * 220 * np.arange(SR) / SR)
    sf.write(path, wave.astype(np.float32), SR, subtype="FLOAT")
    caplog.set_level(logging.WARNING, logger="vestnik")
    synthesize(tmp_path, "audio", str(path))
    assert "peaks at 3.00 times full scale (+9.5 dB)" in caplog.text
    written, _ = sf.read(tmp_path / "out" / "speech.wav")
    # scaled: still a sine (clipping would flatten a third of every period at full scale)
    assert np.max(np.abs(written)) == pytest.approx(1.0, abs=1e-3)
    assert np.mean(np.abs(written) > 0.99) < 0.1
    assert np.allclose(written, wave / 3.0, atol=2e-4)
    caplog.clear()
    sf.write(path, (wave / 3.0 * 1.005).astype(np.float32), SR, subtype="FLOAT")
    synthesize(tmp_path, "audio", str(path))  # a resampling overshoot's size: scaled silently
    assert "full scale" not in caplog.text
    written, _ = sf.read(tmp_path / "out" / "speech.wav")
    assert np.allclose(written, wave / 3.0, atol=2e-4)


# ------------------------------------------------------------------------------------------------
# Joining chunk videos


def chunk_video(path: Path, frames: int, width: int = 128, height: int = 96) -> Path:
    with media.FrameWriter(path, width, height, 25) as writer:
        for index in range(frames):
            writer.write(np.full((height, width, 3), index * 5 % 255, np.uint8))
    return path


def speech_wav(path: Path, seconds: float) -> Path:
    media.write_wav(path, 0.3 * np.sin(np.arange(int(seconds * SR)) * 0.05), SR)
    return path


@pytest.fixture(scope="module")
def chunks(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("chunks")
    chunk_video(folder / "0.mp4", 25)
    chunk_video(folder / "1.mp4", 25)
    chunk_video(folder / "wide.mp4", 25, width=160)
    speech_wav(folder / "speech.wav", 2.0)
    speech_wav(folder / "long.wav", 6.0)
    return folder


def test_chunks_that_fit_the_speech_join(chunks, tmp_path):
    out = tmp_path / "final.mp4"
    media.concat_with_audio([chunks / "0.mp4", chunks / "1.mp4"], chunks / "speech.wav", out)
    assert media.probe(out)["video_frames"] == 50


@pytest.mark.parametrize(
    ("videos", "speech", "pattern"),
    [
        (["0.mp4", "gone.mp4"], "speech.wav", r"gone\.mp4': chunk video not found"),
        (["0.mp4", "wide.mp4"], "speech.wav",
         r"wide\.mp4': chunk video is 160x96 h264 yuv420p 25 fps, but 0\.mp4 is 128x96 h264 "
         r"yuv420p 25 fps; only chunks rendered alike"),
        (["0.mp4", "1.mp4"], "long.wav",
         r"long\.wav': the speech lasts 6\.00 s but the 2 chunk video\(s\) 2\.00 s"),
        (["0.mp4", "1.mp4"], "speech.wav.txt", r"audio file not found"),
    ],
)
def test_merge_refuses_what_does_not_join(chunks, tmp_path, videos, speech, pattern):
    out = tmp_path / "final.mp4"
    with pytest.raises(VestnikError, match=pattern) as info:
        media.concat_with_audio([chunks / v for v in videos], chunks / speech, out)
    assert "chunks.txt" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------------
# ffmpeg on a full disk: the merge under a file-size limit (RLIMIT_FSIZE, no root needed)

MERGER = textwrap.dedent(
    """
    import json, resource, sys
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))
    from pathlib import Path
    from vestnik import media
    from vestnik.errors import VestnikError
    chunks, out = Path(sys.argv[1]), sys.argv[2]
    try:
        media.concat_with_audio([chunks / "0.mp4", chunks / "1.mp4"], chunks / "speech.wav", out)
    except VestnikError as exc:
        print(json.dumps(str(exc)))
        sys.exit(3)
    """
)


def test_merge_on_a_full_disk_is_reported_like_every_other_write(chunks, tmp_path):
    out = tmp_path / "final.mp4"
    proc = subprocess.run(
        [sys.executable, "-c", MERGER, str(chunks), str(out)], capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")}, timeout=120,
    )
    assert proc.returncode == 3, proc.stdout + proc.stderr
    message = json.loads(proc.stdout.strip().splitlines()[-1])
    assert message.startswith(f"file '{out}': could not write the file: File too large (ffmpeg:")
    assert message.endswith("free some space and run again")
    assert "SIGXFSZ" in message
    assert list(tmp_path.iterdir()) == []


def test_ffmpeg_errors_keep_the_lines_that_explain_them(tmp_path):
    notes = tmp_path / "notes.wav"
    notes.write_text("это не звук", encoding="utf-8")
    with pytest.raises(VestnikError) as info:
        media.read_audio(notes, SR)
    assert "ffmpeg could not decode the audio" in str(info.value)
    assert "Invalid data found when processing input" in str(info.value)
    report = "\n".join(
        ["ffmpeg version 7", "  built with gcc", "Input #0, concat, from 'x':",
         "[mov,mp4 @ 0x1] moov atom not found", "[concat @ 0x2] Impossible to open '1.mp4'",
         "frame=   10 fps=0.0 q=-1.0 size=   0kB", "Conversion failed!"]
    )
    detail = media.report_detail(report)
    assert detail.startswith("[mov,mp4 @ 0x1] moov atom not found | [concat @ 0x2] Impossible")
    assert "frame=" not in detail and "built with" not in detail
    unusual = "ffmpeg version 7\n  built with gcc\n  Stream #0:0: Video\nsomething odd\nframe= 1"
    assert media.report_detail(unusual) == "something odd"


# ------------------------------------------------------------------------------------------------
# Results deleted or edited by hand between runs


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> tuple[Path, dict]:
    workdir = tmp_path_factory.mktemp("finished") / "work"
    workdir.mkdir()
    config = base_config({"a": {"text": "Здравствуйте! Сегодня хорошая погода, и мы идём гулять.",
                                "chunks": {"workers": 2, "min_seconds": 1.0}}})
    proc = run_workflow(workdir, config)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return workdir, config


def copy_run(finished_run, tmp_path) -> tuple[Path, dict]:
    workdir, config = finished_run
    copy = tmp_path / "work"
    shutil.copytree(workdir, copy, symlinks=True)
    return copy, config


def test_a_deleted_chunk_video_is_rendered_again(finished_run, tmp_path):
    workdir, config = copy_run(finished_run, tmp_path)
    job = workdir / "results" / "jobs" / "a"
    reference = decoded_digest(job / "chunks" / "1.mp4", "video")
    final = decoded_digest(job / "final.mp4", "video")
    (job / "chunks" / "1.mp4").unlink()
    proc = run_workflow(workdir, config)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert decoded_digest(job / "chunks" / "1.mp4", "video") == reference
    assert decoded_digest(job / "final.mp4", "video") == final
    assert temp_files(workdir / "results") == []


def test_a_hand_edited_speech_wav_is_detected(finished_run, tmp_path):
    workdir, config = copy_run(finished_run, tmp_path)
    job = workdir / "results" / "jobs" / "a"
    stats = (job / "stats.json").read_text(encoding="utf-8")
    samples, rate = sf.read(job / "speech.wav")
    sf.write(job / "speech.wav", samples[: len(samples) // 2], rate, subtype="PCM_16")
    proc = run_workflow(workdir, config)
    assert proc.returncode != 0
    assert (
        "file 'results/jobs/a/speech.wav': the speech was changed after speech.json was "
        "written with it"
    ) in proc.stderr, proc.stderr[-3000:]
    assert "(rule plan_chunks)" in proc.stderr
    assert (job / "stats.json").read_text(encoding="utf-8") == stats
