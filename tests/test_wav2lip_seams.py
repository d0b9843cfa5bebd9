"""No seams: chunks rendered with their planned audio context equal one render, bit for bit."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from vestnik import chunks as chunking  # noqa: E402
from vestnik.avatar import load_avatar  # noqa: E402
from vestnik.lipsync.chunk import ChunkJob  # noqa: E402
from vestnik.lipsync.wav2lip import Wav2LipEngine  # noqa: E402
from vestnik.lipsync.wav2lip_model import Wav2Lip, save_checkpoint  # noqa: E402

from .workflow_helpers import AVATAR  # noqa: E402

RATE = 22050
FPS = 25.0


def _speech(seconds: float) -> np.ndarray:
    """Syllable-like bursts (voiced tone + noise) with pauses, quantised like a 16-bit wav."""
    rng = np.random.default_rng(7)
    t = np.arange(int(seconds * RATE)) / RATE
    envelope = np.clip(np.sin(2 * np.pi * 2.7 * t) * 1.6, 0, 1) ** 2
    voiced = np.sin(2 * np.pi * (140 + 60 * np.sin(2 * np.pi * 1.3 * t)) * t)
    signal = envelope * (0.4 * voiced + 0.15 * rng.standard_normal(t.size))
    return np.round(np.clip(signal, -1, 1) * 32767) / 32768.0


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    torch.manual_seed(3)
    model = Wav2Lip()
    generator = torch.Generator().manual_seed(4)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2, generator=generator)
            module.running_var.uniform_(0.3, 1.5, generator=generator)
    path = tmp_path_factory.mktemp("seams") / "wav2lip.pth"
    save_checkpoint(model, path)
    return Wav2LipEngine({"checkpoint": str(path), "batch_size": 4})


def _render(engine, avatar, samples, audio_start, first, count):
    job = ChunkJob(avatar, samples, RATE, audio_start, start_frame=first, n_frames=count, fps=FPS)
    return list(engine.render(job))


def test_chunked_frames_equal_one_render(engine):
    avatar = load_avatar(AVATAR)
    speech = _speech(0.9)
    plan = chunking.plan_chunks(speech, RATE, FPS, workers=3, min_seconds=0.3, context=0.5)
    assert len(plan) == 3
    total = chunking.total_frames(len(speech), RATE, FPS)
    whole = _render(engine, avatar, speech, 0.0, 0, total)
    parts = []
    for chunk in plan:
        audio = chunking.chunk_samples(speech, RATE, chunk)
        first, count = chunk.start_frame, chunk.n_frames
        parts += _render(engine, avatar, audio, chunk.audio_start, first, count)
    assert len(parts) == len(whole) == total
    for index, (a, b) in enumerate(zip(parts, whole, strict=True)):
        assert np.array_equal(a, b), f"frame {index} differs"

    x, y, w, h = engine.boxes(avatar)[0]
    mouths = np.stack([frame[y : y + h, x : x + w] for frame in whole]).astype(int)
    assert np.abs(mouths - mouths[0]).max() > 0, "the audio does not change the frames"

    middle = plan[1]
    audio = chunking.chunk_samples(speech, RATE, middle)
    shifted = _render(
        engine, avatar, audio, middle.audio_start + 0.04, middle.start_frame, middle.n_frames
    )
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(shifted, whole[middle.start_frame : middle.end_frame], strict=True)
    ), "a misplaced chunk audio went unnoticed"
