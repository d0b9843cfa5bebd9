"""Monotonic alignment search against a brute-force search over every monotonic alignment."""

import itertools

import numpy as np
import pytest

from vestnik.acoustic.mas import path_from_durations, search_durations


def maximum_path(
    logp: np.ndarray, text_lengths: np.ndarray, mel_lengths: np.ndarray
) -> np.ndarray:
    """Best monotonic alignment per batch item: (B, T_text, T_mel) float32 0/1 matrix.

    `logp` is (B, T_text, T_mel); see `search_durations` for the lengths.
    """
    logp = np.asarray(logp, dtype=np.float64)
    scores = np.ascontiguousarray(logp.transpose(2, 0, 1))
    return path_from_durations(search_durations(scores, text_lengths, mel_lengths), logp.shape[2])



def brute_force(logp: np.ndarray) -> tuple[float, set[tuple[int, ...]]]:
    """Best total score and every duration tuple reaching it (each token >= 1 frame)."""
    tokens, frames = logp.shape
    best, winners = -np.inf, set()
    for cuts in itertools.combinations(range(1, frames), tokens - 1):
        bounds = (0, *cuts, frames)
        score = sum(logp[i, bounds[i]:bounds[i + 1]].sum() for i in range(tokens))
        durations = tuple(bounds[i + 1] - bounds[i] for i in range(tokens))
        if score > best + 1e-12:
            best, winners = score, {durations}
        elif abs(score - best) <= 1e-12:
            winners.add(durations)
    return best, winners


@pytest.mark.parametrize("seed", range(6))
def test_matches_brute_force_on_random_batches(seed):
    rng = np.random.default_rng(seed)
    batch = 5
    text_lengths = rng.integers(1, 6, size=batch)
    mel_lengths = np.array([rng.integers(t, 10) for t in text_lengths])
    logp = rng.normal(scale=3.0, size=(batch, text_lengths.max() + 1, mel_lengths.max() + 2))
    path = maximum_path(logp, text_lengths, mel_lengths)
    for b in range(batch):
        t, m = text_lengths[b], mel_lengths[b]
        best, winners = brute_force(logp[b, :t, :m])
        assert (path[b] * logp[b]).sum() == pytest.approx(best, abs=1e-9)
        durations = tuple(int(d) for d in path[b, :t, :m].sum(axis=1))
        assert durations in winners
        # nothing outside the item's own corner, one token per frame
        assert path[b].sum() == m and path[b, :t, :m].sum() == m
        assert np.all(path[b, :t, :m].sum(axis=0) == 1)


def test_path_is_monotonic_and_surjective():
    rng = np.random.default_rng(7)
    logp = rng.normal(size=(2, 12, 40))
    durations = search_durations(
        np.ascontiguousarray(logp.transpose(2, 0, 1)), np.array([12, 7]), np.array([40, 25])
    )
    assert durations[0].sum() == 40 and np.all(durations[0] >= 1)
    assert durations[1, :7].sum() == 25 and np.all(durations[1, :7] >= 1)
    assert np.all(durations[1, 7:] == 0)
    path = path_from_durations(durations, 40)
    tokens_per_frame = path[0].argmax(axis=0)
    assert np.all(np.diff(tokens_per_frame) >= 0) and np.all(np.diff(tokens_per_frame) <= 1)


def test_follows_a_planted_alignment():
    """Frames drawn near their token's mean are assigned back to that token."""
    rng = np.random.default_rng(3)
    true = np.array([3, 1, 5, 2, 4])
    means = rng.normal(scale=4.0, size=(len(true), 8))
    frames = np.repeat(means, true, axis=0) + rng.normal(scale=0.3, size=(true.sum(), 8))
    logp = -0.5 * ((means[:, None, :] - frames[None, :, :]) ** 2).sum(-1)
    path = maximum_path(logp[None], [len(true)], [true.sum()])
    assert path[0].sum(axis=1).astype(int).tolist() == true.tolist()


def test_refuses_fewer_frames_than_tokens():
    with pytest.raises(ValueError):
        maximum_path(np.zeros((1, 4, 3)), [4], [3])
