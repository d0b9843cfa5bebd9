"""The procedural lip-sync engine: face and mouth finding, openness tracks, the mouth warp."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from vestnik.avatar import load_avatar
from vestnik.errors import VestnikError
from vestnik.lipsync.chunk import ChunkJob
from vestnik.lipsync.face import (
    MAX_GAP,
    avatar_faces,
    detect_face,
    face_from_haar,
    find_mouth_box,
)
from vestnik.lipsync.procedural import Pose, ProceduralEngine
from vestnik.lipsync.visemes import (
    CONTEXT_SECONDS,
    openness_from_audio,
    openness_from_events,
    phoneme_openness,
)

ROOT = Path(__file__).resolve().parents[1]
ASTRONAUT = ROOT / "resources" / "avatar.png"
SR = 22050
FPS = 25.0
STILL = {"blink_rate": 0, "head_motion": 0, "brows": 0}
"""Settings without the face's life: only the mouth moves, so silence is the avatar itself."""


@pytest.fixture(scope="module")
def astronaut():
    return load_avatar(ASTRONAUT)


def harmonic_bursts(bursts: list[tuple[float, float, float]], seconds: float) -> np.ndarray:
    """Silence with (start, end, amplitude) bursts of a 150 Hz tone with a few harmonics."""
    t = np.arange(int(seconds * SR)) / SR
    tone = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in (1, 2, 3, 4))
    envelope = np.zeros_like(t)
    for start, end, amplitude in bursts:
        ramp = np.clip(np.minimum(t - start, end - t) / 0.01, 0, 1)
        envelope = np.maximum(envelope, amplitude * ramp)
    return (0.5 * envelope * tone).astype(np.float32)


BURSTS = [
    (0.40, 0.90, 0.5),
    (1.30, 1.55, 0.15),
    (1.80, 2.60, 0.35),
    (3.10, 3.40, 0.05),
    (3.80, 4.50, 0.6),
    (4.70, 5.00, 0.25),
]
SPEECH = harmonic_bursts(BURSTS, 6.0)


def phoneme_events(start: float) -> list[dict]:
    """A synthetic eSpeak-like phoneme track: 'мама' (m A m a#), a pause, 'пока' (p o k a#)."""
    events, t = [], start
    for name, length in [
        ("m", 0.08), ("'A", 0.16), ("m", 0.08), ("a#", 0.12), ("_", 0.5),
        ("p", 0.07), ("V", 0.1), ("k", 0.07), ("'A", 0.18),
    ]:  # fmt: skip
        events.append({"type": "phoneme", "start": t, "end": t + length, "symbol": name})
        t += length
    return [{"type": "sentence", "start": start}, *events]


def job_for(avatar, start_frame: int, n_frames: int, speech=SPEECH, context=0.5, events=None):
    """The ChunkJob a chunk gets: its frames' audio plus `context` seconds each side."""
    duration = len(speech) / SR
    audio_start = round(max(0.0, start_frame / FPS - context), 6)
    audio_end = round(min(duration, (start_frame + n_frames) / FPS + context), 6)
    audio = speech[round(audio_start * SR) : round(audio_end * SR)]
    return ChunkJob(avatar, audio, SR, audio_start, start_frame, n_frames, FPS, events)


def mouth_region(frame: np.ndarray, box) -> np.ndarray:
    x, y, w, h = box
    return frame[y - h : y + 3 * h, x - w // 2 : x + w + w // 2].astype(np.float32)


# --- face and mouth ---------------------------------------------------------------------------


def test_face_on_astronaut(astronaut):
    x, y, w, h = detect_face(astronaut.frame(0))
    assert abs(x - 177) <= 6 and abs(y - 66) <= 6 and abs(w - 95) <= 8 and abs(h - 95) <= 8


def test_mouth_box_on_astronaut(astronaut):
    # Measured by eye on the image: lips span x 202..248, y 138..155, closing line near y 146.
    x, y, w, h = face_from_haar((177, 66, 95, 95)).mouth_box
    assert abs(x + w / 2 - 225) <= 3 and abs(y + h / 2 - 146) <= 3
    assert 40 <= w <= 52 and 15 <= h <= 24
    (found,) = find_mouth_box(astronaut)
    assert abs(found[0] + found[2] / 2 - 225) <= 3 and abs(found[1] + found[3] / 2 - 146) <= 3


def test_configured_mouth_box_wins_and_is_checked(astronaut):
    assert find_mouth_box(astronaut, [10, 20, 30, 12]) == [(10, 20, 30, 12)]
    for bad in ([500, 500, 40, 20], [1, 2, 3], "mouth"):
        with pytest.raises(VestnikError, match="mouth_box"):
            find_mouth_box(astronaut, bad, job="demo")


def test_no_face_names_job_and_file(tmp_path):
    cv2.imwrite(str(tmp_path / "wall.png"), np.full((96, 96, 3), 128, dtype=np.uint8))
    wall = load_avatar(tmp_path / "wall.png")
    with pytest.raises(VestnikError) as caught:
        find_mouth_box(wall, job="demo")
    message = str(caught.value)
    assert "job 'demo'" in message and "wall.png" in message
    assert "no face found" in message and "lipsync.procedural.mouth_box" in message
    engine = ProceduralEngine({"mouth_box": [30, 60, 36, 12]})
    frames = list(engine.render(job_for(wall, 0, 30)))
    assert any(not np.array_equal(f, wall.frame(0)) for f in frames)


def test_video_avatar_is_tracked_with_gaps_filled(tmp_path, astronaut):
    still = astronaut.frame(0)
    frames = [np.roll(still, 2 * i, axis=1) for i in range(8)]
    frames[3] = frames[4] = np.full_like(still, 128)
    writer = cv2.VideoWriter(
        str(tmp_path / "talk.avi"), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (512, 512)
    )
    for frame in frames:
        writer.write(frame)
    writer.release()
    video = load_avatar(tmp_path / "talk.avi")
    boxes = find_mouth_box(video)
    assert len(boxes) == 8 and all(box is not None for box in boxes)
    centres = np.array([box[0] + box[2] / 2 for box in boxes])
    assert abs(centres[0] - 225) <= 4 and abs(centres[-1] - 239) <= 4
    assert np.all(np.diff(centres) >= -1)
    assert MAX_GAP >= 2
    rendered = list(ProceduralEngine(STILL).render(job_for(video, 0, 20)))
    assert len(rendered) == 20 and all(f.shape == (512, 512, 3) for f in rendered)
    quiet = rendered[2]
    assert np.array_equal(quiet, video.frame(2))


# --- openness ---------------------------------------------------------------------------------


def test_phoneme_openness_follows_articulation():
    assert phoneme_openness("'A") == 1.0
    assert phoneme_openness("'A") > phoneme_openness("'o") > phoneme_openness("'u") > 0.2
    assert phoneme_openness("'e") > phoneme_openness("'i")
    assert phoneme_openness("'A") > phoneme_openness("A") > phoneme_openness("a#")
    assert phoneme_openness("m") == phoneme_openness("p;") == phoneme_openness("b") == 0.0
    assert 0 < phoneme_openness("f") < phoneme_openness("t") < phoneme_openness("'i")
    assert phoneme_openness("_") == phoneme_openness("_:") == 0.0
    assert phoneme_openness("ˈɑ") == 1.0 and phoneme_openness("ˈɨ") == phoneme_openness("'y")
    assert phoneme_openness("'") is None


def test_openness_from_phonemes():
    events = phoneme_events(0.4)
    track = openness_from_events(events, 0, 60, FPS)
    assert track.dtype == np.float32 and track.shape == (60,)
    assert np.all(track[:9] == 0.0)  # silence before speech
    assert track[11:14].max() > 0.8  # stressed [a] of "ма"
    assert track[13:17].min() < 0.6 * track[11:14].max()  # lips close for the second m
    pause = slice(int(1.02 * FPS), int(1.38 * FPS))
    assert track[pause].min() == 0.0  # the mouth rests in the pause
    assert track[-10:].max() == 0.0  # and after the speech


def test_word_events_are_a_fallback():
    words = [{"type": "word", "start": 0.4, "end": 0.9, "text": "мама"}]
    track = openness_from_events(words, 0, 40, FPS)
    assert track[:9].max() == 0.0 and track[12:22].max() > 0.5 and track[-10:].max() == 0.0
    peaks = np.flatnonzero((track[1:-1] > track[:-2]) & (track[1:-1] >= track[2:]))
    assert len(peaks) == 2  # two syllables
    both = openness_from_events(words + phoneme_events(2.0), 0, 40, FPS)
    assert both[:40].max() == 0.0  # phonemes, when present, win over words


def test_openness_from_audio_uses_fixed_levels():
    quiet = harmonic_bursts([(0.4, 1.0, 0.003)], 1.5)  # below the gate
    loud = harmonic_bursts([(0.4, 1.0, 0.5)], 1.5)
    assert openness_from_audio(quiet, SR, 0.0, 0, 37, FPS).max() == 0.0
    track = openness_from_audio(loud, SR, 0.0, 0, 37, FPS)
    assert track[:8].max() == 0.0 and track[14:22].min() > 0.95 and track[-6:].max() == 0.0
    half = openness_from_audio(loud * 0.1, SR, 0.0, 0, 37, FPS)
    assert 0.2 < half[18] < 0.8  # 20 dB quieter opens part-way: not normalised per chunk


def test_openness_is_the_same_in_any_chunk():
    whole_audio = openness_from_audio(SPEECH, SR, 0.0, 0, 150, FPS)
    whole_events = openness_from_events(phoneme_events(0.4), 0, 150, FPS)
    for start, count in [(0, 40), (40, 60), (100, 50), (77, 1)]:
        job = job_for(None, start, count, context=CONTEXT_SECONDS + 0.001)
        part = openness_from_audio(job.audio, SR, job.audio_start, start, count, FPS)
        assert np.array_equal(part, whole_audio[start : start + count])
        part = openness_from_events(phoneme_events(0.4), start, count, FPS)
        assert np.array_equal(part, whole_events[start : start + count])


# --- rendering --------------------------------------------------------------------------------


def test_frames_follow_the_speech_envelope(astronaut):
    """Mouth-region change correlates with the speech envelope (Pearson r > 0.6).

    The change grows monotonically with openness, and openness grows monotonically with the
    level in dB, smoothed over about two frames; the bursts are long against that smoothing,
    so r is near 0.9. The bound leaves room for the dB compression and the smoothing lag, yet
    a mouth moving at random, late by a syllable, or inverted gives r near or below 0.
    """
    n = int(len(SPEECH) / SR * FPS)
    frames = list(ProceduralEngine(STILL).render(job_for(astronaut, 0, n)))
    assert len(frames) == n
    assert all(f.dtype == np.uint8 and f.shape == (512, 512, 3) for f in frames)
    (box,) = find_mouth_box(astronaut)
    rest = mouth_region(astronaut.frame(0), box)
    change = np.array([np.abs(mouth_region(f, box) - rest).mean() for f in frames])
    hop = int(SR / FPS)
    envelope = np.sqrt([np.mean(SPEECH[k * hop : (k + 1) * hop] ** 2) for k in range(n)])
    r = np.corrcoef(change, envelope)[0, 1]
    assert r > 0.6, r
    far = np.ones(n, dtype=bool)
    for start, end, _ in BURSTS:
        far[max(0, int((start - 0.1) * FPS)) : int((end + 0.4) * FPS)] = False
    assert far.sum() > 20
    for k in np.flatnonzero(far):
        assert np.array_equal(frames[k], astronaut.frame(k))


def test_warp_is_local_and_seamless(astronaut):
    engine = ProceduralEngine({})
    (face,) = avatar_faces(astronaut, "dlib68")
    box = face.mouth_box
    rest = astronaut.frame(0).astype(np.int16)
    opened = engine.draw(astronaut.frame(0), face, Pose(open=1.0)).astype(np.int16)
    changed = np.argwhere(np.abs(opened - rest).max(axis=2) > 0)
    (top, left), (bottom, right) = changed.min(axis=0), changed.max(axis=0)
    x, y, w, h = box
    assert left >= x - w and right <= x + 2 * w and top >= y - 2 * h and bottom <= y + 5 * h
    column = opened[y : y + 2 * h, x + w // 2].max(axis=1)
    assert column.min() < 60  # dark mouth interior between the lips
    assert np.abs(opened - rest)[y : y + h, x : x + w].mean() > 20
    ring = np.abs(opened - rest).max(axis=2)
    assert ring[top, :].max() <= 2 and ring[bottom, :].max() <= 2  # fades out, no hard edge
    assert np.array_equal(engine.draw(astronaut.frame(0), face, Pose()), astronaut.frame(0))


def test_chunks_render_the_same_frames(astronaut):
    engine = ProceduralEngine({})
    whole = list(engine.render(job_for(astronaut, 0, 100)))
    parts = list(engine.render(job_for(astronaut, 0, 40)))
    parts += list(ProceduralEngine({}).render(job_for(astronaut, 40, 60)))
    assert len(parts) == 100
    assert all(np.array_equal(a, b) for a, b in zip(whole, parts, strict=True))
    events = phoneme_events(0.4)
    whole = list(engine.render(job_for(astronaut, 0, 100, events=events)))
    parts = list(engine.render(job_for(astronaut, 0, 40, events=events)))
    parts += list(engine.render(job_for(astronaut, 40, 60, events=events)))
    assert any(not np.array_equal(f, astronaut.frame(0)) for f in whole)
    assert all(np.array_equal(a, b) for a, b in zip(whole, parts, strict=True))


def test_events_drive_the_mouth_unless_audio_is_asked(astronaut):
    events = phoneme_events(3.0)  # speech events placed where the audio is nearly silent
    job = job_for(astronaut, 0, 100, events=events)
    by_events = ProceduralEngine({"source": "events"}).openness(job)
    by_audio = ProceduralEngine({"source": "audio"}).openness(job)
    assert by_events[:70].max() == 0.0 and by_events[75:100].max() > 0.5
    assert by_audio[12:22].min() > 0.5
    both = ProceduralEngine({}).openness(job)  # auto: the events and the loudness together
    assert both[12:22].min() > 0.2 and both[75:100].max() > 0.25
    with pytest.raises(VestnikError, match="no phoneme or word timings"):
        ProceduralEngine({"source": "events"}, job="demo").openness(job_for(astronaut, 0, 5))


@pytest.mark.parametrize(
    "settings, words",
    [
        ({"smile": 1}, "unknown"),
        ({"max_open": 3}, "max_open"),
        ({"max_open": "wide"}, "max_open"),
        ({"source": "video"}, "source"),
        ({"gate_db": -10, "full_db": -20}, "full_db"),
        ({"interior_color": [0, 0]}, "interior_color"),
        ({"interior_color": "dark"}, "interior_color"),
    ],
)
def test_bad_settings_are_refused(settings, words):
    with pytest.raises(VestnikError, match=words) as caught:
        ProceduralEngine(settings, job="demo")
    assert "job 'demo'" in str(caught.value)
