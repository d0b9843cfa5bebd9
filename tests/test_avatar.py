"""Avatar loading: images and looped videos, even sizes, and a clear error for each bad input."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from vestnik.avatar import load_avatar
from vestnik.errors import VestnikError

ROOT = Path(__file__).resolve().parents[1]
ASTRONAUT = ROOT / "resources" / "avatar.png"


def write_video(path: Path, frames: list[np.ndarray], fps: float = 25.0) -> None:
    """Write frames losslessly enough to tell them apart (MJPG in AVI is in every OpenCV)."""
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    assert writer.isOpened()
    for frame in frames:
        writer.write(frame)
    writer.release()


def test_image_avatar():
    avatar = load_avatar(ASTRONAUT)
    assert (avatar.width, avatar.height) == (512, 512)
    assert not avatar.is_video and avatar.n_frames == 1
    frame = avatar.frame(0)
    assert frame.dtype == np.uint8 and frame.shape == (512, 512, 3)
    assert avatar.frame(12345) is frame
    with pytest.raises(ValueError):
        frame[0, 0, 0] = 1


def test_odd_sizes_are_cropped_to_even(tmp_path):
    image = np.random.default_rng(0).integers(0, 255, (67, 101, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "odd.png"), image)
    avatar = load_avatar(tmp_path / "odd.png")
    assert (avatar.width, avatar.height) == (100, 66)
    assert np.array_equal(avatar.frame(0), image[:66, :100])


@pytest.mark.parametrize("channels", [1, 4])
def test_grey_and_alpha_images_become_bgr(tmp_path, channels):
    shape = (40, 48) if channels == 1 else (40, 48, 4)
    cv2.imwrite(str(tmp_path / "a.png"), np.full(shape, 200, dtype=np.uint8))
    frame = load_avatar(tmp_path / "a.png").frame(0)
    assert frame.shape == (40, 48, 3) and int(frame.min()) == 200


def test_video_avatar_loops(tmp_path):
    levels = [20, 60, 100, 140, 180, 220]
    frames = [np.full((64, 81, 3), level, dtype=np.uint8) for level in levels]
    write_video(tmp_path / "loop.avi", frames, fps=12.0)
    avatar = load_avatar(tmp_path / "loop.avi")
    assert avatar.is_video and avatar.n_frames == len(levels)
    assert (avatar.width, avatar.height) == (80, 64)
    assert avatar.fps == pytest.approx(12.0)
    means = [float(avatar.frame(i).mean()) for i in range(3 * len(levels))]
    assert means[: len(levels)] == pytest.approx(levels, abs=3)
    for i in range(len(levels), len(means)):
        assert avatar.frame(i) is avatar.frame(i % len(levels))


def check_error(path: Path, *words: str) -> None:
    with pytest.raises(VestnikError) as caught:
        load_avatar(path, job="demo")
    message = str(caught.value)
    assert "job 'demo'" in message and str(path) in message
    for word in words:
        assert word in message


def test_missing_file(tmp_path):
    check_error(tmp_path / "nope.png", "not found")


def test_unreadable_image(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"this is not a png")
    check_error(tmp_path / "broken.png", "cannot read")


def test_video_without_frames(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"\x00" * 64)
    check_error(tmp_path / "empty.mp4", "no decodable frames")


def test_too_small_image(tmp_path):
    cv2.imwrite(str(tmp_path / "tiny.png"), np.zeros((20, 40, 3), dtype=np.uint8))
    check_error(tmp_path / "tiny.png", "40x20", "smaller than 32x32")


def test_too_large_image(tmp_path):
    cv2.imwrite(str(tmp_path / "huge.png"), np.zeros((40, 4100, 3), dtype=np.uint8))
    check_error(tmp_path / "huge.png", "4100x40", "larger than 4096", "downscale")


def test_unsupported_suffix(tmp_path):
    (tmp_path / "face.txt").write_text("hello")
    check_error(tmp_path / "face.txt", "unsupported avatar type")


def test_header_size_reads_png_and_jpeg_without_decoding(tmp_path):
    from vestnik.avatar import header_size

    frame = np.zeros((37, 71, 3), np.uint8)
    for name in ("a.png", "a.jpg"):
        cv2.imwrite(str(tmp_path / name), frame)
        assert header_size(tmp_path / name) == (71, 37)
    cv2.imwrite(str(tmp_path / "a.bmp"), frame)
    assert header_size(tmp_path / "a.bmp") is None


def test_huge_png_is_refused_from_its_header(tmp_path):
    """A PNG whose header says 9000x9000 is refused before any pixel data is read."""
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", 9000, 9000, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    png = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk
    png += struct.pack(">I", zlib.crc32(chunk))
    (tmp_path / "huge.png").write_bytes(png)
    with pytest.raises(VestnikError, match="9000x9000, larger than 4096"):
        load_avatar(tmp_path / "huge.png", job="big")
