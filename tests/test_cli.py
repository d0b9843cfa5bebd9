"""The `vestnik` CLI runs single stages outside Snakemake, from the repository root."""

import logging
import os

import numpy as np
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


def one_line_error(capsys, command: str) -> str:
    """stderr holds exactly one line, the command's error, and no traceback."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"vestnik {command}: error: "), err
    return lines[0]


def test_avatar_override_is_honoured_for_a_config_job(in_repo, tmp_path, capsys):
    import cv2

    image = cv2.imread(str(ROOT / "resources" / "avatar.png"))
    small = image[16:-16, 32:-32]  # another frame size, the same face
    avatar = tmp_path / "другое лицо.png"
    cv2.imwrite(str(avatar), small)
    speech = tmp_path / "speech.wav"
    assert main(["tts", "--text", "Привет.", "--out", str(speech)]) == 0
    out = tmp_path / "single.mp4"
    assert main(["lipsync", "--job", "greeting", "--avatar", str(avatar), "--speech",
                 str(speech), "--out", str(out)]) == 0
    (video,) = [s for s in media.probe(out)["streams"] if s["type"] == "video"]
    assert (video["width"], video["height"]) == (small.shape[1], small.shape[0])
    capsys.readouterr()
    missing = tmp_path / "нет лица.png"
    assert main(["tts", "--job", "greeting", "--avatar", str(missing),
                 "--out", str(tmp_path / "x.wav")]) == 1
    line = one_line_error(capsys, "tts")
    assert "job 'greeting'" in line and "нет лица.png" in line and "not found" in line


def test_text_and_audio_together_are_refused(in_repo, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["tts", "--text", "Привет.", "--audio", "voice.wav", "--out", str(tmp_path / "x.wav")])
    assert info.value.code == 2
    assert "--audio: not allowed with argument --text" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "command", "message"),
    [
        (["tts", "--text", "Привет.", "--out", "{tmp}/x.mp3"], "tts",
         "x.mp3': the output must be a .wav file"),
        (["tts", "--text", "Привет.", "--out", "{tmp}/folder.wav"], "tts",
         "folder.wav': the output is a folder"),
        (["lipsync", "--job", "greeting", "--speech", "{tmp}/alone.wav", "--out", "{tmp}/x.mp4"],
         "lipsync", "alone.json': no timings file alone.json beside the speech"),
        (["lipsync", "--job", "greeting", "--speech", "{tmp}/nowhere.wav", "--out", "{tmp}/x.mp4"],
         "lipsync", "nowhere.wav': speech file not found"),
        (["merge", "{tmp}/gone.mp4", "--speech", "{tmp}/alone.wav", "--out", "{tmp}/x.mp4"],
         "merge", "gone.mp4': chunk video not found"),
        (["merge", "{tmp}/gone.mp4", "--speech", "{tmp}/alone.wav", "--out", "{tmp}/x.mov"],
         "merge", "x.mov': the output must be a .mp4 file"),
        (["tts", "--text", "Привет \ud83d мир.", "--out", "{tmp}/x.wav"], "tts",
         "job 'cli': the text is not valid Unicode: character 8 of 13 is a lone surrogate"),
        (["tts", "--text", "Привет \udcff мир.", "--out", "{tmp}/x.wav"], "tts",
         "character 8 of 13 is the byte 0xFF, which is not UTF-8"),
        (["tts", "--config", "{tmp}/broken.yaml", "--text", "Привет.", "--out", "{tmp}/x.wav"],
         "tts", "broken.yaml': not valid YAML: line 2, column 15"),
        (["status", "--config", "{tmp}/broken.yaml"], "status",
         "broken.yaml': not valid YAML: line 2, column 15"),
        (["serve", "--config", "{tmp}/broken.yaml", "--port", "3999"], "serve",
         "broken.yaml': not valid YAML: line 2, column 15"),
    ],
)
def test_bad_arguments_are_one_line_errors(in_repo, tmp_path, capsys, argv, command, message):
    (tmp_path / "folder.wav").mkdir()
    (tmp_path / "broken.yaml").write_text("jobs:\n  a: {text: [x}\n", encoding="utf-8")
    media.write_wav(tmp_path / "alone.wav", np.zeros(22050, np.float32), 22050)
    argv = [arg.replace("{tmp}", str(tmp_path)) for arg in argv]
    assert main(argv) == 1
    assert message in one_line_error(capsys, command)


def test_a_port_out_of_range_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as info:
        main(["serve", "--port", "99999"])
    assert info.value.code == 2
    assert "--port: a port is 1 to 65535, got 99999" in capsys.readouterr().err
