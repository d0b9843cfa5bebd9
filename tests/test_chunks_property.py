"""Property tests of the chunk planner over random speech: exact cover, frame cuts, no empties."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from vestnik.chunks import plan_chunks, total_frames

SR = 22050


@st.composite
def speech(draw):
    seconds = draw(st.floats(min_value=0.01, max_value=90.0))
    seed = draw(st.integers(min_value=0, max_value=2**32 - 1))
    rng = np.random.default_rng(seed)
    samples = rng.standard_normal(int(seconds * SR)).astype(np.float32) * 0.1
    gaps = rng.integers(0, len(samples), size=draw(st.integers(0, 12)))
    for gap in gaps:
        samples[gap : gap + int(0.3 * SR)] *= 0.001
    return samples if len(samples) else np.zeros(1, np.float32)


@settings(max_examples=150, deadline=None)
@given(
    samples=speech(),
    fps=st.sampled_from([24.0, 25.0, 30.0, 29.97]),
    workers=st.integers(min_value=1, max_value=16),
    max_seconds=st.one_of(st.none(), st.floats(min_value=1.0, max_value=30.0)),
    min_seconds=st.floats(min_value=0.2, max_value=5.0),
    search_window=st.floats(min_value=0.0, max_value=2.0),
)
def test_plan_covers_every_frame_once(
    samples, fps, workers, max_seconds, min_seconds, search_window
):
    chunks = plan_chunks(
        samples, SR, fps, workers=workers, max_seconds=max_seconds,
        min_seconds=min_seconds, search_window=search_window,
    )
    n_frames = total_frames(len(samples), SR, fps)
    assert chunks[0].start_frame == 0
    assert chunks[-1].end_frame == n_frames
    assert [c.chunk for c in chunks] == list(range(len(chunks)))
    for left, right in zip(chunks, chunks[1:], strict=False):
        assert left.end_frame == right.start_frame
    for chunk in chunks:
        assert chunk.n_frames >= 1
        assert abs(chunk.start * fps - chunk.start_frame) < 1e-3
        assert 0.0 <= chunk.audio_start <= chunk.start + 1e-6
        assert chunk.audio_end >= min(chunk.end, len(samples) / SR) - 1e-6
    assert len(chunks) <= max(workers, 1 + int(len(samples) / SR / (max_seconds or 1e9)) + 1)
