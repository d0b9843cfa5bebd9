"""Chunk planning: cuts in pauses, on frame boundaries, covering the speech exactly once."""

import numpy as np
import pytest

from vestnik.chunks import (
    chunk_count,
    chunk_samples,
    plan_chunks,
    read_plan,
    total_frames,
    write_plan,
)

SR = 22050
FPS = 25


def speech_with_pauses(segments: list[tuple[float, bool]]) -> np.ndarray:
    """Concatenate (seconds, voiced) segments: voiced = a loud tone, else near silence."""
    rng = np.random.default_rng(0)
    parts = []
    for seconds, voiced in segments:
        n = int(seconds * SR)
        t = np.arange(n) / SR
        part = 0.5 * np.sin(2 * np.pi * 180 * t) if voiced else 1e-4 * rng.standard_normal(n)
        parts.append(part.astype(np.float32))
    return np.concatenate(parts)


def assert_exact_cover(chunks, samples):
    assert chunks[0].start_frame == 0
    assert chunks[-1].end_frame == total_frames(len(samples), SR, FPS)
    for left, right in zip(chunks, chunks[1:], strict=False):
        assert left.end_frame == right.start_frame
    assert all(c.n_frames > 0 for c in chunks)


def test_cuts_land_in_pauses():
    # 3 s voiced, 0.4 s pause at 3.0-3.4, 3 s voiced, pause at 6.4-6.8, 3 s voiced.
    samples = speech_with_pauses(
        [(3.0, True), (0.4, False), (3.0, True), (0.4, False), (3.0, True)]
    )
    chunks = plan_chunks(samples, SR, FPS, workers=3)
    assert len(chunks) == 3
    assert_exact_cover(chunks, samples)
    assert 3.0 <= chunks[1].start <= 3.4
    assert 6.4 <= chunks[2].start <= 6.8


def test_cuts_are_frame_multiples():
    samples = speech_with_pauses([(7.37, True), (0.3, False), (5.11, True)])
    for chunk in plan_chunks(samples, SR, FPS, workers=4):
        assert chunk.start == pytest.approx(chunk.start_frame / FPS)
        assert chunk.end == pytest.approx(chunk.end_frame / FPS)
        assert (chunk.start_frame * SR) % FPS == 0  # 882 samples per frame at 25 fps


def test_last_frame_covers_the_end():
    samples = speech_with_pauses([(2.013, True)])
    assert total_frames(len(samples), SR, FPS) == 51  # 50.3 frames, rounded up
    chunks = plan_chunks(samples, SR, FPS, workers=1)
    assert chunks[-1].end_frame / FPS >= len(samples) / SR


def test_short_speech_gives_fewer_chunks_not_empty_ones():
    samples = speech_with_pauses([(1.5, True)])
    chunks = plan_chunks(samples, SR, FPS, workers=3, min_seconds=2.0)
    assert len(chunks) == 1
    assert_exact_cover(chunks, samples)
    samples = speech_with_pauses([(4.5, True)])
    assert len(plan_chunks(samples, SR, FPS, workers=8, min_seconds=2.0)) == 2


def test_max_seconds_raises_the_count():
    assert chunk_count(60.0, workers=3, max_seconds=10.0, min_seconds=2.0) == 6
    assert chunk_count(60.0, workers=3, max_seconds=None, min_seconds=2.0) == 3
    samples = speech_with_pauses([(2.0, True), (0.3, False)] * 10)
    chunks = plan_chunks(samples, SR, FPS, workers=1, max_seconds=5.0)
    assert len(chunks) == 5
    assert_exact_cover(chunks, samples)
    assert max(c.n_frames for c in chunks) / FPS <= 5.0 + 0.6 * 2


def test_context_and_audio_slices(tmp_path):
    samples = speech_with_pauses([(3.0, True), (0.4, False), (3.0, True)])
    chunks = plan_chunks(samples, SR, FPS, workers=2, context=0.5)
    first, second = chunks
    assert first.audio_start == 0.0
    assert second.audio_start == pytest.approx(second.start - 0.5)
    assert second.audio_end == pytest.approx(len(samples) / SR, abs=1e-6)
    piece = chunk_samples(samples, SR, second)
    offset = round(second.audio_start * SR)
    np.testing.assert_array_equal(piece, samples[offset : offset + len(piece)])
    write_plan(tmp_path / "chunks.tsv", chunks)
    assert read_plan(tmp_path / "chunks.tsv") == chunks
