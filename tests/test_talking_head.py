"""The procedural talking head measured as a viewer would: an independent dlib fit on frames.

The engine's own landmarks and poses are never read back: every figure comes from a fresh
face detection and 68-point fit on the rendered frames (vestnik.lipsync.quality).
"""

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from vestnik.avatar import load_avatar
from vestnik.config import engine_settings
from vestnik.errors import VestnikError
from vestnik.lipsync import check_engine, faces_file, job_faces, life, quality
from vestnik.lipsync.chunk import ChunkJob
from vestnik.lipsync.face import (
    Face,
    avatar_faces,
    check_face,
    check_mouth_box,
    read_faces,
    track_faces,
    write_faces,
)
from vestnik.lipsync.procedural import Pose, ProceduralEngine
from vestnik.tts import espeak

ROOT = Path(__file__).resolve().parents[1]


def speak(text: str):
    """eSpeak NG speech with the schema's default voice settings."""
    return espeak.synthesize(text, **engine_settings("tts", "espeak", {}))
ASTRONAUT = ROOT / "resources" / "avatar.png"
SR = 22050
FPS = 25.0


@pytest.fixture(scope="module")
def astronaut():
    return load_avatar(ASTRONAUT)


@pytest.fixture(scope="module")
def face(astronaut) -> Face:
    return avatar_faces(astronaut, "dlib68")[0]


def _fit(frames):
    points = quality.fit_frames(frames)
    assert not np.isnan(points).any()
    return points


def _gap(points):
    width = np.linalg.norm(points[:, 16] - points[:, 0], axis=1)
    return np.linalg.norm(points[:, 62] - points[:, 66], axis=1) / width


def _mouth_width(points):
    width = np.linalg.norm(points[:, 16] - points[:, 0], axis=1)
    return np.linalg.norm(points[:, 48] - points[:, 54], axis=1) / width


# --- visemes ------------------------------------------------------------------------------


def test_each_viseme_has_its_mouth_shape(astronaut, face):
    """Every viseme, rendered alone, read back by the independent fit."""
    engine = ProceduralEngine({})
    poses = {
        "rest": Pose(),
        "open": Pose(open=1.0),
        "round": Pose(open=0.5, round=1.0),
        "spread": Pose(open=0.5, spread=1.0),
        "half": Pose(open=0.5),
        "press": Pose(press=1.0),
        "labiodental": Pose(open=0.1, labiodental=1.0),
    }
    frames = [engine.draw(astronaut.frame(0), face, pose) for pose in poses.values()]
    points = dict(zip(poses, _fit(frames), strict=True))
    gap = {name: float(_gap(p[None])[0]) for name, p in points.items()}
    width = {name: float(_mouth_width(p[None])[0]) for name, p in points.items()}
    assert gap["open"] - gap["rest"] >= 0.09  # jaw, lower lip and chin down, upper lip up
    assert points["open"][8, 1] - points["rest"][8, 1] > 0.08 * face.width  # the chin drops
    assert width["round"] <= 0.93 * width["spread"]  # о/у corners in, и/е corners out
    assert width["round"] < width["half"] < width["spread"]
    assert gap["press"] <= gap["rest"] + 0.01  # м/п/б: lips together
    lower_lip = points["labiodental"][57, 1] - points["half"][57, 1]
    assert lower_lip < -0.03 * face.width  # ф/в: the lower lip rises towards the upper teeth
    # a dark interior with bright teeth inside the open mouth
    x, y, w, h = face.mouth_box
    opened = frames[1][y : y + 2 * h, x + w // 4 : x + 3 * w // 4].astype(float).mean(axis=2)
    assert opened.min() < 50 and opened.max() > 150


def test_coarticulation_rounds_the_consonants_before_a_rounded_vowel():
    from vestnik.lipsync.visemes import visemes_from_events

    events, t = [], 0.4
    for symbol, length in [("s", 0.12), ("t", 0.08), ("'u", 0.2), ("_", 0.4), ("s", 0.12),
                           ("t", 0.08), ("'i", 0.2)]:  # fmt: skip
        events.append({"type": "phoneme", "start": t, "end": t + length, "symbol": symbol})
        t += length
    tracks = visemes_from_events(events, 0, 45, FPS)
    consonants = slice(int(0.45 * FPS), int(0.58 * FPS))
    assert tracks["round"][consonants].min() > 0.3  # rounding starts on "ст" before "у"
    assert tracks["spread"][consonants].max() == 0.0
    assert tracks["spread"][int(1.35 * FPS) : int(1.45 * FPS)].min() > 0.5  # "и" spreads
    assert tracks["round"][int(1.35 * FPS) : int(1.45 * FPS)].max() < 0.2


# --- speech quality -----------------------------------------------------------------------


def test_speech_render_meets_the_quality_targets(astronaut):
    """The default `greeting` job's text, rendered and measured with the independent fit."""
    speech = speak(
        "Здравствуйте! Меня зовут Вестник, и сегодня я расскажу вам главные новости."
    )
    n = int(speech.duration * FPS)
    job = ChunkJob(astronaut, speech.samples, SR, 0.0, 0, n, FPS, speech.events)
    frames = list(ProceduralEngine({}, job="quality").render(job))
    points = quality.fit_frames(frames)
    envelope = quality.envelope(speech.samples, SR, FPS, n)
    figures = quality.measure(points, FPS, envelope, speech.events)
    assert figures["faces_found"] == n
    assert figures["opening_range"] >= 0.09, figures
    assert figures["r_envelope"] >= 0.6, figures
    assert figures["round_spread"] <= 0.93, figures
    assert 0.2 <= figures["head_motion"] <= 4.0, figures


# --- life ---------------------------------------------------------------------------------


def test_blinks_come_at_a_human_rate_and_length():
    times = np.arange(0, 600, 0.005)
    ends = np.arange(3.0, 595, 5.0)
    cues = life.Cues(np.array([]), ends, True)
    closure = life.blinks(times, seed=7, rate=12, cues=cues)
    closed = closure > 0.05
    starts = np.flatnonzero(closed[1:] & ~closed[:-1]) + 1
    stops = np.flatnonzero(~closed[1:] & closed[:-1]) + 1
    assert 6 <= len(starts) / 10 <= 35
    lengths = (stops - starts[: len(stops)]) * 0.005
    assert 0.08 <= np.median(lengths) <= 0.2 and lengths.max() <= 0.4
    after_end = np.mean([closure[(times > e) & (times < e + 0.4)].max() > 0.5 for e in ends])
    random_time = np.mean([closure[(times > e) & (times < e + 0.4)].max() > 0.5 for e in ends + 2])
    assert after_end > 2 * random_time  # more often at phrase ends
    assert np.array_equal(closure, life.blinks(times, seed=7, rate=12, cues=cues))
    assert not np.array_equal(closure, life.blinks(times, seed=8, rate=12, cues=cues))


def test_head_moves_slightly_and_smoothly():
    times = np.arange(0, 120, 1 / FPS)
    cues = life.Cues(np.arange(0.5, 120, 0.6), np.array([]), True)
    x, y, roll = life.head_motion(times, 3, 1.0, cues, np.zeros_like(times))
    offset = np.hypot(x - np.median(x), y - np.median(y))
    assert 0.002 <= np.percentile(offset, 95) <= 0.04  # 0.2-4% of the face width
    assert np.abs(np.diff(x)).max() < 0.001 and np.abs(np.diff(y)).max() < 0.003  # no jitter
    assert np.abs(roll).max() < 0.03
    lifts = life.brow_lifts(times, 3, 1.0, cues)
    assert 0 < np.mean(lifts > 0.5) < 0.3  # now and then, not always


def test_blink_is_seen_by_the_independent_fit(astronaut, face):
    engine = ProceduralEngine({})
    points = _fit([engine.draw(astronaut.frame(0), face, Pose(blink=b)) for b in (0, 1)])
    eye = np.linalg.norm(points[:, 37] - points[:, 41], axis=1)
    assert eye[1] < quality.BLINK_RATIO * eye[0]


def test_chunks_equal_one_render_with_life(astronaut):
    """Blinks, drift and brows are functions of global time and the job's seed."""
    speech = speak("Мама мыла раму.")
    n = int(speech.duration * FPS) + 40
    audio = np.concatenate([speech.samples, np.zeros(2 * SR, dtype=np.float32)])

    def chunk(start, count):
        return ChunkJob(astronaut, audio, SR, 0.0, start, count, FPS, speech.events)

    whole = list(ProceduralEngine({}, job="life").render(chunk(0, n)))
    parts = list(ProceduralEngine({}, job="life").render(chunk(0, 33)))
    parts += list(ProceduralEngine({}, job="life").render(chunk(33, n - 33)))
    assert all(np.array_equal(a, b) for a, b in zip(whole, parts, strict=True))
    quiet = whole[-1]
    assert not np.array_equal(quiet, astronaut.frame(0))  # alive in silence too
    other = list(ProceduralEngine({}, job="other").render(chunk(n - 1, 1)))[0]
    assert not np.array_equal(other, quiet)  # another job, another seed


# --- faces: once per avatar, bad input ----------------------------------------------------


def test_faces_file_round_trip_and_stale_refusal(tmp_path, astronaut):
    faces = track_faces(astronaut, "haar")
    write_faces(tmp_path / "faces.json", astronaut, "haar", faces)
    again = read_faces(tmp_path / "faces.json", astronaut, "haar", "demo")
    assert again[0].box == faces[0].box
    assert np.allclose(again[0].points, faces[0].points, atol=0.01)
    with pytest.raises(VestnikError, match="does not match the avatar") as caught:
        read_faces(tmp_path / "faces.json", astronaut, "dlib68", "demo")
    assert "job 'demo'" in str(caught.value)
    settings = {"engine": "procedural", "landmarks": "haar", "procedural": {}}
    assert faces_file(settings, "resources/avatar.png").endswith("/faces_haar.json")
    assert faces_file({**settings, "procedural": {"mouth_box": [1, 2, 3, 4]}}, "a.png") is None
    assert job_faces(settings, astronaut, "demo", str(tmp_path / "faces.json"))[0].box == (
        faces[0].box
    )


def test_wav2lip_uses_the_landmark_face_boxes(astronaut, face):
    from vestnik.lipsync.wav2lip import face_boxes

    boxes = face_boxes(astronaut, [0, 0, 0, 0], smooth=5, max_gap=0, found=[face.box])
    assert boxes == [face.box]
    x, y, w, h = face.box
    assert x <= face.points[:, 0].min() + 2 and x + w >= face.points[:, 0].max() - 2


def _canvas(tmp_path, name, place):
    canvas = np.full((512, 512, 3), 200, dtype=np.uint8)
    place(canvas, cv2.imread(str(ASTRONAUT)))
    cv2.imwrite(str(tmp_path / name), canvas)
    return load_avatar(tmp_path / name)


@pytest.mark.parametrize("model", ["dlib68", "haar"])
def test_two_faces_animate_the_largest_and_say_so(tmp_path, caplog, model):
    def place(canvas, image):
        canvas[:, :] = image
        small = cv2.resize(image[40:220, 140:310], (120, 127))
        canvas[300:427, 380:500] = small

    avatar = _canvas(tmp_path, "two.png", place)
    caplog.set_level(logging.WARNING, logger="vestnik")
    settings = {"engine": "procedural", "landmarks": model, "procedural": {}}
    check_engine(settings, avatar, "pair")
    (face,) = track_faces(avatar, model, "pair")
    assert "2 faces" in caplog.text and "largest" in caplog.text and "two.png" in caplog.text
    assert "job pair" in caplog.text
    assert face.box[0] < 300  # the big face on the left, not the small one


def test_small_face_is_animated_with_a_warning(tmp_path, caplog):
    avatar = _canvas(tmp_path, "tiny.png", lambda c, i: c.__setitem__(
        (slice(96, 416), slice(96, 416)), cv2.resize(i, (320, 320))))  # fmt: skip
    caplog.set_level(logging.WARNING, logger="vestnik")
    settings = {"engine": "procedural", "landmarks": "dlib68", "procedural": {}}
    check_engine(settings, avatar, "small")
    assert "smaller than 64 px" in caplog.text and "tiny.png" in caplog.text
    assert "job small" in caplog.text


@pytest.mark.parametrize(
    "name, place, words",
    [
        ("cut.png", lambda c, i: c.__setitem__((slice(0, 512), slice(0, 327)), i[:, 185:]),
         "cut by the frame's edge"),
        ("wall.png", lambda c, i: None, "no face found"),
    ],
)  # fmt: skip
def test_bad_faces_are_refused_before_rendering(tmp_path, name, place, words):
    avatar = _canvas(tmp_path, name, place)
    settings = {"engine": "procedural", "landmarks": "dlib68", "procedural": {}}
    with pytest.raises(VestnikError, match=words) as caught:
        check_engine(settings, avatar, "bad")
    assert "job 'bad'" in str(caught.value) and name in str(caught.value)


def test_profile_view_is_refused(astronaut, face):
    turned = face.points.copy()
    turned[27:36, 0] += 0.45 * np.linalg.norm(turned[45] - turned[36])
    with pytest.raises(VestnikError, match="profile view") as caught:
        check_face(Face(face.box, turned), astronaut, 0, "side")
    assert "job 'side'" in str(caught.value) and "avatar.png" in str(caught.value)


@pytest.mark.parametrize("box", [[200, 140, 0, 18], [200, 140, 44, 0]])
def test_zero_size_mouth_box_says_so(astronaut, box):
    with pytest.raises(VestnikError, match="zero size") as caught:
        check_mouth_box(box, astronaut, "flat")
    assert "job 'flat'" in str(caught.value)
    with pytest.raises(VestnikError, match="zero size"):
        check_engine({"engine": "procedural", "procedural": {"mouth_box": box}}, astronaut, "f")


def test_video_avatar_chunks_equal_one_render(tmp_path, astronaut):
    """Each video frame's mesh depends on its own face only, not on where a chunk starts."""
    writer = cv2.VideoWriter(
        str(tmp_path / "loop.avi"), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (512, 512)
    )
    for i in range(6):
        writer.write(np.roll(astronaut.frame(0), 3 * i, axis=1))
    writer.release()
    video = load_avatar(tmp_path / "loop.avi")
    speech = speak("Мама мыла раму.")
    n = int(speech.duration * FPS)
    assert n > 10

    def chunk(start, count):
        return ChunkJob(video, speech.samples, SR, 0.0, start, count, FPS, speech.events)

    whole = list(ProceduralEngine({}, job="loop").render(chunk(0, n)))
    parts = list(ProceduralEngine({}, job="loop").render(chunk(0, 7)))
    parts += list(ProceduralEngine({}, job="loop").render(chunk(7, n - 7)))
    assert all(np.array_equal(a, b) for a, b in zip(whole, parts, strict=True))
