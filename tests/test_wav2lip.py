"""Wav2Lip: official layout and strict loading, its audio front end, faces and blending."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from vestnik.avatar import Avatar, load_avatar  # noqa: E402
from vestnik.errors import VestnikError  # noqa: E402
from vestnik.lipsync import check_engine, make_engine  # noqa: E402
from vestnik.lipsync import wav2lip as w2l  # noqa: E402
from vestnik.lipsync import wav2lip_audio as audio  # noqa: E402
from vestnik.lipsync.chunk import ChunkJob  # noqa: E402
from vestnik.lipsync.wav2lip_model import (  # noqa: E402
    FusedConv,
    InferenceWav2Lip,
    Wav2Lip,
    load_wav2lip,
    read_state,
    save_checkpoint,
    with_trained_statistics,
)

from .workflow_helpers import AVATAR  # noqa: E402


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return Wav2Lip().eval()


@pytest.fixture(scope="module")
def checkpoint(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("w2l") / "wav2lip.pth"
    save_checkpoint(model, path)
    return path


def test_official_parameter_and_entry_counts(model):
    state = model.state_dict()
    assert sum(p.numel() for p in model.parameters()) == 36_298_035
    assert len(state) == 352
    assert sum(k.endswith("num_batches_tracked") for k in state) == 50
    assert sum(v.numel() for k, v in state.items() if ".running_" in k) == 22_752
    assert tuple(state["face_encoder_blocks.0.0.conv_block.0.weight"].shape) == (16, 6, 7, 7)
    assert tuple(state["audio_encoder.12.conv_block.0.weight"].shape) == (512, 512, 1, 1)
    assert tuple(state["face_decoder_blocks.6.0.conv_block.0.weight"].shape) == (160, 64, 3, 3)
    assert tuple(state["output_block.1.weight"].shape) == (3, 32, 1, 1)
    assert list(state)[0] == "face_encoder_blocks.0.0.conv_block.0.weight"
    assert list(state)[-1] == "output_block.1.bias"


def test_shapes(model):
    with torch.inference_mode():
        out = model(torch.zeros(2, 1, 80, 16), torch.rand(2, 6, 96, 96))
    assert out.shape == (2, 3, 96, 96)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


@pytest.fixture(scope="module")
def trained_like():
    """A network whose BatchNorm layers carry non-trivial statistics and affine terms, as a
    trained checkpoint does (fresh ones are the identity and would hide folding mistakes)."""
    torch.manual_seed(1)
    return with_trained_statistics(Wav2Lip(), seed=1)


@pytest.mark.parametrize("fused", [True, False], ids=["onednn", "plain"])
@pytest.mark.parametrize("batch", [1, 3])
def test_inference_form_matches_the_network(trained_like, fused, batch):
    fast = InferenceWav2Lip(trained_like).eval()
    layers = [m for m in fast.modules() if isinstance(m, FusedConv)]
    assert len(layers) == 52  # 49 blocks + the split output head (2) + the RGB projection
    for layer in layers:
        layer.fused = fused and layer.fused
    generator = torch.Generator().manual_seed(batch)
    mel = torch.randn(batch, 1, 80, 16, generator=generator)
    faces = torch.rand(batch, 6, 96, 96, generator=generator)
    with torch.inference_mode():
        expected = trained_like(mel, faces)
        got = fast(mel, faces)
    assert got.shape == expected.shape
    assert float((got - expected).abs().max()) < 1e-5


def test_inference_form_refuses_other_input_sizes(trained_like):
    fast = InferenceWav2Lip(trained_like).eval()
    with torch.inference_mode(), pytest.raises(ValueError, match="expected a"):
        fast(torch.zeros(1, 1, 80, 16), torch.zeros(1, 6, 128, 128))


def test_official_format_loads_with_and_without_prefix(model, checkpoint, tmp_path):
    blob = torch.load(checkpoint, weights_only=True)
    assert set(blob) == {"state_dict", "optimizer", "global_step", "global_epoch"}
    assert all(key.startswith("module.") for key in blob["state_dict"])
    bare = tmp_path / "wav2lip_gan.pth"
    save_checkpoint(model, bare, data_parallel=False)
    for path in (checkpoint, bare):
        loaded = load_wav2lip(path)
        for key, value in model.state_dict().items():
            assert torch.equal(loaded.state_dict()[key], value), key
        assert not loaded.training


def test_mismatched_checkpoint_is_refused_with_the_keys(model, tmp_path):
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    state["module.audio_encoder.0.conv_block.0.weight"] = torch.zeros(32, 1, 5, 5)
    del state["module.output_block.1.bias"]
    state["module.extra_head.weight"] = torch.zeros(3)
    path = tmp_path / "bad.pth"
    torch.save({"state_dict": state, "global_step": 0}, path)
    with pytest.raises(VestnikError) as info:
        load_wav2lip(path, job="news")
    message = str(info.value)
    assert "job 'news'" in message and str(path) in message
    assert "3 mismatches" in message
    assert "missing key output_block.1.bias" in message
    assert "unexpected key extra_head.weight" in message
    assert "shape of audio_encoder.0.conv_block.0.weight: file (32, 1, 5, 5)" in message


def test_foreign_files_are_refused(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(VestnikError, match="cannot read the Wav2Lip checkpoint"):
        read_state(junk)
    listing = tmp_path / "list.pth"
    torch.save([1, 2, 3], listing)
    with pytest.raises(VestnikError, match="not a Wav2Lip checkpoint"):
        read_state(listing)
    with pytest.raises(VestnikError, match="not found"):
        read_state(tmp_path / "missing.pth")


def test_missing_checkpoint_fails_the_preflight(tmp_path):
    avatar = load_avatar(AVATAR)
    missing = tmp_path / "models" / "wav2lip_gan.pth"
    settings = {"engine": "wav2lip", "wav2lip": {"checkpoint": str(missing)}}
    with pytest.raises(VestnikError) as info:
        check_engine(settings, avatar, "news")
    assert "job 'news'" in str(info.value) and str(missing) in str(info.value)
    assert "Rudrabha/Wav2Lip" in str(info.value)


def test_engine_registry_and_settings(checkpoint):
    engine = make_engine({"engine": "wav2lip", "wav2lip": {"checkpoint": str(checkpoint)}})
    assert isinstance(engine, w2l.Wav2LipEngine) and engine.batch_size == 32
    with pytest.raises(VestnikError, match="unknown wav2lip setting"):
        make_engine({"engine": "wav2lip", "wav2lip": {"mouth_box": [1, 2, 3, 4]}}, job="x")
    with pytest.raises(VestnikError, match="precision"):
        w2l.Wav2LipEngine({"precision": "int8"})


# Audio front end -------------------------------------------------------------------------


def _chirp(seconds: float = 1.3) -> np.ndarray:
    t = np.arange(int(seconds * 16000)) / 16000
    return (0.5 * np.sin(2 * np.pi * (100 + 2500 * t) * t) + 0.2 * np.sin(2 * np.pi * 440 * t))


def melspectrogram(wav16: np.ndarray) -> np.ndarray:
    """Mel frames of a whole 16 kHz waveform: (80, 1 + len // 200), like the official shape."""
    return audio.mel_frames(wav16, 0, 0, 1 + len(wav16) // audio.HOP)


def test_mel_matches_the_official_front_end():
    """Reference values: the official pipeline (scipy lfilter pre-emphasis, librosa 0.11 stft
    with pad_mode='reflect', librosa.filters.mel(16000, 800, 80, 55, 7600), the dB and
    normalisation steps of audio.py) on the same float32 chirp."""
    mel = melspectrogram(_chirp().astype(np.float32))
    assert mel.shape == (80, 1 + 20800 // 200) and mel.dtype == np.float32
    reference = {
        10: (-244.96960539494336, {18: 2.218477430395488, 17: 2.1461894223148397}),
        40: (-272.02531943606607, {51: 2.9319716519860277, 52: 2.2817599491821916}),
        90: (-284.59739328530134, {72: 2.8811156159067846, 10: 1.3530598039784705}),
    }
    for frame, (total, values) in reference.items():
        assert mel[:, frame].sum() == pytest.approx(total, abs=1e-3)
        for band, value in values.items():
            assert mel[band, frame] == pytest.approx(value, abs=1e-5)
    assert mel.min() >= -4.0 and mel.max() <= 4.0


def test_mel_of_silence_is_the_floor():
    assert np.all(melspectrogram(np.zeros(3200, np.float32)) == -4.0)


def test_resampler_is_accurate_in_the_mel_band():
    t = np.arange(2 * 22050) / 22050
    t16 = np.arange(32000) / 16000
    for freq in (100.0, 1000.0, 7000.0):
        out = audio.resample_span(np.sin(2 * np.pi * freq * t), 22050, 0, 0, 32000)
        assert np.abs(out[800:-800] - np.sin(2 * np.pi * freq * t16[800:-800])).max() < 1e-5
    alias = audio.resample_span(np.sin(2 * np.pi * 9000.0 * t), 22050, 0, 0, 32000)
    assert np.abs(alias[800:-800]).max() < 1e-4


@pytest.mark.parametrize("offset", [0, 1, 3307, 15000])
def test_chunk_mels_are_bit_identical(offset):
    rng = np.random.default_rng(1)
    speech = (rng.standard_normal(3 * 22050) * 0.2).astype(np.float32)
    whole, m0 = audio.frame_mels(speech, 22050, 0, 0, 75, 25.0)
    lo, hi = audio.needed_input(22050, 30, 20, 25.0)
    assert lo >= offset
    part, p0 = audio.frame_mels(speech[offset:hi + 50], 22050, offset, 30, 20, 25.0)
    assert p0 == audio.mel_start(30, 25.0) == 96
    assert np.array_equal(part, whole[:, p0 - m0 : p0 - m0 + part.shape[1]])


def test_mel_windows_follow_the_official_indexing():
    assert [audio.mel_start(k, 25.0) for k in range(6)] == [0, 3, 6, 9, 12, 16]
    assert audio.mel_start(100, 30.0) == int(100 * (80.0 / 30.0))


# Faces and blending -----------------------------------------------------------------------


def test_gaps_reuse_the_last_good_box():
    a, b = (10, 10, 50, 60), (12, 11, 50, 60)
    assert w2l.fill_gaps([None, a, None, None, b, None], 2, "v.mp4", None) == [a, a, a, a, b, b]
    with pytest.raises(VestnikError, match="no face in avatar frame 2 ") as info:
        w2l.fill_gaps([a, a, None, None, None, b], 2, "v.mp4", "news")
    assert "job 'news'" in str(info.value) and "v.mp4" in str(info.value)
    with pytest.raises(VestnikError, match="no face found"):
        w2l.fill_gaps([None, None], 5, "v.mp4", None)


def test_video_boxes_are_smoothed_and_padded():
    still = load_avatar(AVATAR)
    frames = []
    for shift in range(8):
        frame = np.roll(still.frame(0), shift * 3, axis=1).copy()
        if shift == 4:
            frame[:] = 128
        frames.append(frame)
    video = Avatar(still.path.with_name("moving.mp4"), tuple(frames), True, 25.0, 1)
    boxes = w2l.face_boxes(video, [0.0, 0.1, 0.05, 0.05], smooth=3, max_gap=1)
    assert len(boxes) == 8
    xs = [box[0] for box in boxes]
    assert xs == sorted(xs) and xs[-1] - xs[0] >= 15
    rx, ry, rw, rh = w2l.detect_face(still.frame(0))
    (padded,) = w2l.face_boxes(still, [0.0, 0.1, 0.05, 0.05], smooth=3, max_gap=1)
    assert padded == (
        round(rx - 0.05 * rw), ry, round(rx + 1.05 * rw) - round(rx - 0.05 * rw),
        round(ry + 1.1 * rh) - ry,
    )
    with pytest.raises(VestnikError, match="no face in avatar frame 4"):
        w2l.face_boxes(video, [0, 0, 0, 0], smooth=3, max_gap=0)


def test_blend_mask_vanishes_on_the_box_border():
    mask = w2l.blend_mask(90, 110)[:, :, 0]
    assert mask.shape == (110, 90)
    border = np.concatenate([mask[0], mask[-1], mask[:, 0], mask[:, -1]])
    assert np.all(border == 0.0)
    assert mask.max() > 0.99 and mask[: 110 // 3].max() < 0.05


def test_paste_touches_only_the_box():
    frame = load_avatar(AVATAR).frame(0)
    box = (170, 60, 100, 120)
    face = np.zeros((96, 96, 3), np.float32)
    out = w2l.paste_face(frame, box, face)
    changed = np.any(out != frame, axis=2)
    ys, xs = np.nonzero(changed)
    assert changed.any()
    assert ys.min() > box[1] and ys.max() < box[1] + box[3] - 1
    assert xs.min() > box[0] and xs.max() < box[0] + box[2] - 1


def test_colour_matching_removes_a_tint():
    rng = np.random.default_rng(0)
    original = rng.uniform(40, 200, (64, 64, 3)).astype(np.float32)
    tinted = original * 0.8 + np.array([30.0, -10.0, 5.0], np.float32)
    matched = w2l.match_colours(tinted, original)
    assert np.abs(matched - original).max() < 1e-3


def test_render_on_cpu(checkpoint, no_cuda):
    avatar = load_avatar(AVATAR)
    engine = w2l.Wav2LipEngine({"checkpoint": str(checkpoint), "batch_size": 4})
    samples = np.sin(2 * np.pi * 220 * np.arange(22050) / 22050).astype(np.float32) * 0.3
    chunk = ChunkJob(avatar, samples, 22050, 0.0, start_frame=0, n_frames=5, fps=25.0)
    frames = list(engine.render(chunk))
    assert engine.device == "cpu"
    assert len(frames) == 5
    for frame in frames:
        assert frame.shape == (avatar.height, avatar.width, 3) and frame.dtype == np.uint8
    x, y, w, h = engine.boxes(avatar)[0]
    outside = np.ones(frames[0].shape[:2], bool)
    outside[y : y + h, x : x + w] = False
    assert np.array_equal(frames[0][outside], avatar.frame(0)[outside])
    assert not np.array_equal(frames[0], avatar.frame(0))
