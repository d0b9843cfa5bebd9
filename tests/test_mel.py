"""The shared HiFi-GAN mel front end: Slaney filterbank, STFT framing, log compression."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from vestnik import mel  # noqa: E402

# Values of librosa 0.11.0 `filters.mel(sr=22050, n_fft=1024, n_mels=80, fmin=0, fmax=8000)`.
LIBROSA_ROW_SUMS = {0: 0.045302778482437134, 1: 0.04530278220772743, 10: 0.04914392530918121,
                    40: 0.04654524475336075, 79: 0.04641479253768921}
LIBROSA_ROW_ARGMAX = {0: 2, 1: 3, 10: 19, 40: 80, 79: 358}
LIBROSA_ROW_MAX = {0: 0.022651389241218567, 1: 0.019729746505618095, 10: 0.026492536067962646,
                   40: 0.014895469881594181, 79: 0.003265992971137166}


def test_slaney_mel_scale():
    assert mel.hz_to_mel(1000.0) == pytest.approx(15.0)
    assert mel.hz_to_mel(500.0) == pytest.approx(7.5)
    assert mel.hz_to_mel(8000.0) == pytest.approx(45.245640471924965)
    assert mel.mel_to_hz(40.0) == pytest.approx(5577.800011749387)
    freqs = np.array([0.0, 120.0, 999.0, 1000.0, 4321.0, 11025.0])
    np.testing.assert_allclose(mel.mel_to_hz(mel.hz_to_mel(freqs)), freqs, rtol=1e-12, atol=1e-9)


def test_filterbank_matches_librosa_reference_values():
    basis = mel.mel_filterbank()
    assert basis.shape == (80, 513) and basis.dtype == np.float32
    for row, value in LIBROSA_ROW_SUMS.items():
        assert float(basis[row].sum()) == pytest.approx(value, rel=1e-6)
    for row, value in LIBROSA_ROW_MAX.items():
        assert int(basis[row].argmax()) == LIBROSA_ROW_ARGMAX[row]
        assert float(basis[row].max()) == pytest.approx(value, rel=1e-6)
    assert float(basis.sum()) == pytest.approx(3.713688373565674, rel=1e-6)
    assert np.count_nonzero(basis) == 727
    full = mel.mel_filterbank(fmax=None)
    assert float(full.sum()) == pytest.approx(3.7146472930908203, rel=1e-6)
    assert int(full[79].argmax()) == 491


def test_filterbank_equals_librosa_when_installed():
    librosa = pytest.importorskip("librosa")
    for fmax in (8000, None):
        expected = librosa.filters.mel(sr=22050, n_fft=1024, n_mels=80, fmin=0, fmax=fmax)
        np.testing.assert_array_equal(mel.mel_filterbank(fmax=fmax), expected)


def _numpy_reference(audio: np.ndarray) -> np.ndarray:
    """Independent float64 numpy version of the HiFi-GAN front end."""
    pad = (mel.N_FFT - mel.HOP) // 2
    padded = np.pad(audio.astype(np.float64), (pad, pad), mode="reflect")
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(mel.WIN) / mel.WIN)  # periodic Hann
    count = 1 + (padded.size - mel.N_FFT) // mel.HOP
    frames = np.stack([padded[i * mel.HOP : i * mel.HOP + mel.N_FFT] for i in range(count)])
    spectrum = np.fft.rfft(frames * window, axis=1).T
    magnitude = np.sqrt(spectrum.real**2 + spectrum.imag**2 + 1e-9)
    return np.log(np.maximum(mel.mel_filterbank().astype(np.float64) @ magnitude, 1e-5))


def test_mel_spectrogram_matches_a_numpy_reference():
    rng = np.random.default_rng(0)
    t = np.arange(8192) / mel.SAMPLE_RATE
    audio = (0.4 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.size)).astype(
        np.float32
    )
    features = mel.log_mel(audio)
    assert features.shape == (80, 32) and features.dtype == np.float32
    np.testing.assert_allclose(features, _numpy_reference(audio), atol=2e-3)


@pytest.mark.parametrize("samples", [512, 8192, 22050, 22050 * 2 + 17])
def test_frame_count(samples):
    audio = torch.zeros(samples)
    audio[::7] = 0.1
    assert mel.mel_spectrogram(audio).shape == (80, mel.n_frames(samples))
    if samples % 256 == 0:
        assert mel.n_frames(samples) == samples // 256


def test_batch_and_silence():
    batch = torch.zeros(3, 4096)
    features = mel.mel_spectrogram(batch)
    assert features.shape == (3, 80, 16)
    assert torch.allclose(features, torch.full_like(features, mel.LOG_SILENCE))


def test_bf16_autocast_does_not_change_features():
    audio = torch.sin(torch.linspace(0, 400, 4096)) * 0.3
    plain = mel.mel_spectrogram(audio)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cast = mel.mel_spectrogram(audio)
    assert cast.dtype == torch.float32
    assert torch.equal(plain, cast)
    with pytest.raises(ValueError, match="too short"):
        mel.mel_spectrogram(torch.zeros(384))


def test_features_usable_for_autograd_after_inference_mode():
    with torch.inference_mode():
        mel.mel_spectrogram(torch.ones(2048) * 0.1)
    audio = (torch.rand(2048) - 0.5).requires_grad_()
    mel.mel_spectrogram(audio).sum().backward()
    assert audio.grad is not None and torch.isfinite(audio.grad).all()
