"""Evaluation measures: mel-cepstral distortion with and without DTW, phone boundary matching."""

import numpy as np
import pytest

from vestnik.speech_metrics import (
    boundary_errors,
    dtw_path,
    label_class,
    match_phones,
    mel_cepstra,
    mel_cepstral_distortion,
)


def _mel(frames: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.cumsum(rng.normal(size=(80, frames)), axis=1) * 0.1
    return base - 5.0


def test_mcd_is_zero_for_identical_mels_and_ignores_loudness():
    mel = _mel(50)
    assert mel_cepstral_distortion(mel, mel) == 0.0
    assert mel_cepstral_distortion(mel, mel + 2.0) == pytest.approx(0.0, abs=1e-9)  # c0 only
    assert mel_cepstral_distortion(mel, _mel(50, seed=1)) > 1.0


def test_mcd_matches_the_textbook_formula_for_one_frame():
    a, b = _mel(1), _mel(1, seed=3)
    ca, cb = mel_cepstra(a)[:, 0], mel_cepstra(b)[:, 0]
    expected = 10 / np.log(10) * np.sqrt(2 * np.sum((ca - cb) ** 2))
    assert mel_cepstral_distortion(a, b) == pytest.approx(expected)


def test_dtw_undoes_a_time_stretch():
    mel = _mel(60)
    stretched = np.repeat(mel, 2, axis=1)
    assert mel_cepstral_distortion(mel, stretched, align=True) == pytest.approx(0.0, abs=1e-9)
    assert mel_cepstral_distortion(mel, stretched) > 0.5
    i, j = dtw_path(np.abs(np.arange(3)[:, None] - np.arange(5)[None, :] / 2.0))
    assert (i[0], j[0], i[-1], j[-1]) == (0, 0, 2, 4)
    assert np.all(np.diff(i) >= 0) and np.all(np.diff(j) >= 0)


def test_label_classes_read_festvox_names():
    assert label_class("pau") == ("pause", "")
    assert label_class("aa") == ("vowel", "a") and label_class("ur") == ("vowel", "u")
    assert label_class("tt") == ("consonant", "t") and label_class("sch") == ("consonant", "sch")


def test_boundaries_match_across_transcriptions_and_measure_their_offset():
    # eSpeak's "молоко" against a labeller's string with one extra phone and a pause
    tokens = ["m", "ʌ", "ɭ", "ʌ", "k", "ˈo", "."]
    labels = [(0.0, 0.1, "pau"), (0.1, 0.2, "m"), (0.2, 0.3, "a"), (0.3, 0.4, "l"),
              (0.4, 0.5, "a"), (0.5, 0.55, "h"), (0.55, 0.6, "k"), (0.6, 0.8, "oo"),
              (0.8, 1.0, "pau")]
    starts = [0.12, 0.21, 0.33, 0.40, 0.57, 0.58, 0.85]
    pairs = match_phones([label_class("m")], [label_class("m"), label_class("a")])
    assert pairs == [(0, 0)]
    errors = boundary_errors(tokens, starts, labels)
    assert len(errors) == 6  # every sounding phone, the extra "h" and the pauses left out
    assert np.median(errors) == pytest.approx(0.02)
