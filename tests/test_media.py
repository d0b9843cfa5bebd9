"""The ffmpeg helper: encoding, probing, lossless concatenation and audio muxing."""

import numpy as np
import pytest

from vestnik import media
from vestnik.errors import VestnikError

SR = 22050


def write_clip(path, frames, width=64, height=48, value=0):
    with media.FrameWriter(path, width, height, 25) as writer:
        for k in range(frames):
            writer.write(np.full((height, width, 3), (value + 7 * k) % 255, np.uint8))


def test_frame_writer_and_probe(tmp_path):
    write_clip(tmp_path / "a.mp4", 30)
    info = media.probe(tmp_path / "a.mp4")
    (video,) = info["streams"]
    assert video["codec"] == "h264"
    assert (video["width"], video["height"], video["fps"]) == (64, 48, 25.0)
    assert video["pix_fmt"] == "yuv420p"
    assert info["video_frames"] == 30


def test_failed_encode_leaves_no_file(tmp_path):
    target = tmp_path / "broken.mp4"
    with pytest.raises(RuntimeError), media.FrameWriter(target, 64, 48, 25) as writer:
        writer.write(np.zeros((48, 64, 3), np.uint8))
        raise RuntimeError("renderer crashed")
    assert list(tmp_path.iterdir()) == []


def test_odd_sizes_are_refused(tmp_path):
    with pytest.raises(VestnikError, match="even"):
        media.FrameWriter(tmp_path / "odd.mp4", 63, 48, 25)


def test_concat_keeps_every_frame_and_muxes_audio(tmp_path):
    write_clip(tmp_path / "0.mp4", 37)
    write_clip(tmp_path / "1.mp4", 26, value=100)
    seconds = 63 / 25
    tone = 0.3 * np.sin(2 * np.pi * 220 * np.arange(int(seconds * SR)) / SR)
    media.write_wav(tmp_path / "speech.wav", tone, SR)
    out = tmp_path / "final.mp4"
    media.concat_with_audio([tmp_path / "0.mp4", tmp_path / "1.mp4"], tmp_path / "speech.wav", out)
    info = media.probe(out)
    kinds = sorted(s["type"] for s in info["streams"])
    assert kinds == ["audio", "video"]
    assert info["video_frames"] == 63
    assert info["duration"] == pytest.approx(seconds, abs=1 / 25)


def test_read_audio_resamples_and_downmixes(tmp_path):
    import soundfile as sf

    stereo = np.stack([np.ones(44100) * 0.5, np.zeros(44100)], axis=1).astype(np.float32)
    sf.write(tmp_path / "stereo.wav", stereo, 44100)
    samples = media.read_audio(tmp_path / "stereo.wav", SR)
    assert len(samples) == SR
    assert samples[1000:-1000] == pytest.approx(0.25, abs=1e-3)


def test_read_audio_errors(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "junk.mp3").write_bytes(b"this is not audio at all" * 10)
    with pytest.raises(VestnikError, match="empty"):
        media.read_audio(tmp_path / "empty.wav", SR)
    with pytest.raises(VestnikError, match="junk.mp3"):
        media.read_audio(tmp_path / "junk.mp3", SR)
    with pytest.raises(VestnikError, match="not found"):
        media.read_audio(tmp_path / "missing.wav", SR)


@pytest.mark.parametrize(
    ("subtype", "channels", "rate"),
    [("PCM_16", 1, 22050), ("PCM_24", 2, 44100), ("FLOAT", 1, 16000), ("PCM_U8", 2, 8000)],
)
def test_wav_duration_from_the_header_matches_libsndfile(tmp_path, subtype, channels, rate):
    import soundfile as sf

    path = tmp_path / "a.wav"
    sf.write(path, np.zeros((12345, channels), np.float32), rate, subtype=subtype)
    assert media.audio_duration(path) == sf.info(path).frames / rate == 12345 / rate


def test_duration_of_other_files_and_cut_wavs_comes_from_libsndfile(tmp_path):
    import soundfile as sf

    flac = tmp_path / "a.flac"
    sf.write(flac, np.zeros(SR, np.float32), SR)
    assert media.audio_duration(flac) == pytest.approx(1.0)
    cut = tmp_path / "cut.wav"
    sf.write(cut, np.zeros(SR, np.float32), SR, subtype="PCM_16")
    cut.write_bytes(cut.read_bytes()[: 44 + SR])  # half the samples the header claims
    assert media.audio_duration(cut) == pytest.approx(0.5, abs=1e-3)
    assert media.wav_shortfall(cut) == pytest.approx((1.0, 0.5), abs=1e-3)


def test_the_merge_step_imports_no_numpy_and_no_schema_checker():
    """A merge job only moves bytes: its process start stays light (see bench/scheduling.md)."""
    import subprocess
    import sys

    code = ("import sys, vestnik.runner, vestnik.steps, vestnik.provenance; "
            "print(sorted({'numpy', 'jsonschema', 'yaml', 'soundfile'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
