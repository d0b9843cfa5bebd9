"""The `vestnik` CLI runs single stages outside Snakemake, from the repository root."""

import logging
import os

import pytest

from vestnik import media
from vestnik.chunks import read_plan
from vestnik.cli import main

from .workflow_helpers import ROOT


@pytest.fixture
def in_repo():
    """Run from the repository root (config paths are relative to it); restore the working
    folder and the root logger, which `main` points at this test's captured stderr."""
    previous, handlers = os.getcwd(), logging.getLogger().handlers[:]
    os.chdir(ROOT)
    yield
    os.chdir(previous)
    logging.getLogger().handlers[:] = handlers


def test_tts_plan_lipsync_merge(in_repo, tmp_path, capsys):
    speech = tmp_path / "speech.wav"
    assert main(["tts", "--text", "Проверка командной строки, шаг за шагом.",
                 "--out", str(speech)]) == 0
    assert (tmp_path / "speech.json").is_file()
    assert main(["plan", "--job", "greeting", "--speech", str(speech),
                 "--out", str(tmp_path / "chunks.tsv")]) == 0
    plan = read_plan(tmp_path / "chunks.tsv")
    assert plan[-1].end_frame >= 25
    single = tmp_path / "single.mp4"
    assert main(["lipsync", "--job", "greeting", "--speech", str(speech),
                 "--out", str(single)]) == 0
    info = media.probe(single)
    assert info["video_frames"] == plan[-1].end_frame
    merged = tmp_path / "merged.mp4"
    assert main(["merge", str(single), "--speech", str(speech), "--out", str(merged)]) == 0
    assert media.probe(merged)["video_frames"] == info["video_frames"]
    assert str(merged) in capsys.readouterr().out


def test_errors_are_one_line_and_exit_1(in_repo, tmp_path, capsys):
    assert main(["tts", "--text", "   ", "--out", str(tmp_path / "x.wav")]) == 1
    assert "vestnik tts: error: job 'cli'" in capsys.readouterr().err
    assert main(["plan", "--speech", "x.wav", "--out", "y.tsv"]) == 1
    assert "give --job NAME" in capsys.readouterr().err
