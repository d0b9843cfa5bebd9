"""HiFi-GAN networks, losses and the official checkpoint format."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from vestnik.errors import VestnikError  # noqa: E402
from vestnik.vocoder import losses  # noqa: E402
from vestnik.vocoder.checkpoint import (  # noqa: E402
    export_generator,
    load_generator,
    load_generator_weights,
)
from vestnik.vocoder.config import resolve_experiment, resolve_generator  # noqa: E402
from vestnik.vocoder.models import (  # noqa: E402
    GENERATOR_CONFIGS,
    Generator,
    MultiPeriodDiscriminator,
    MultiScaleDiscriminator,
    count_parameters,
)

from .official import save_official  # noqa: E402

# From REFERENCE.md: the official classes instantiated (with weight norm / after removing it).
OFFICIAL = {
    "v1": (234, 13_936_130, 156, 13_926_017),
    "v2": (234, 928_514, 156, 925_985),
    "v3": (69, 1_464_322, 46, 1_462_273),
}


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def generators():
    torch.manual_seed(0)
    return {name: Generator.from_config(cfg) for name, cfg in GENERATOR_CONFIGS.items()}


@pytest.mark.parametrize("name", ["v1", "v2", "v3"])
def test_parameter_counts_match_the_official_generators(generators, name):
    entries, params, entries_plain, params_plain = OFFICIAL[name]
    model = generators[name]
    assert len(model.state_dict()) == entries
    assert count_parameters(model) == params
    plain = Generator.from_config(GENERATOR_CONFIGS[name]).remove_weight_norm()
    assert len(plain.state_dict()) == entries_plain
    assert count_parameters(plain) == params_plain


def test_official_key_names_and_shapes(generators):
    state = generators["v1"].state_dict()
    assert state["conv_pre.weight_v"].shape == (512, 80, 7)
    assert state["conv_pre.weight_g"].shape == (512, 1, 1)
    assert state["ups.0.weight_v"].shape == (512, 256, 16)
    assert state["ups.0.weight_g"].shape == (512, 1, 1)  # ConvTranspose1d: [in_ch, 1, 1]
    assert state["resblocks.11.convs2.2.weight_v"].shape == (32, 32, 11)
    assert state["conv_post.weight_v"].shape == (1, 32, 7)
    v3 = generators["v3"].state_dict()
    assert v3["resblocks.8.convs.1.weight_v"].shape == (32, 32, 7)
    assert "resblocks.0.convs1.0.weight_g" not in v3


@pytest.mark.parametrize("name", ["v1", "v2", "v3"])
def test_output_is_256_samples_per_frame(generators, name):
    model = generators[name]
    with torch.inference_mode():
        for frames in (1, 3):
            audio = model(torch.randn(2, 80, frames))
            assert audio.shape == (2, 1, frames * 256)
            assert float(audio.abs().max()) <= 1.0


@pytest.mark.parametrize("onednn", [True, False], ids=["onednn", "plain"])
@pytest.mark.parametrize("name", ["v2", "v3"])
def test_inference_path_matches_the_training_forward(generators, name, onednn, monkeypatch):
    from vestnik.vocoder import models

    plain = Generator.from_config(GENERATOR_CONFIGS[name])
    plain.load_state_dict(generators[name].state_dict())
    plain.remove_weight_norm().eval()
    mel = torch.randn(2, 80, 9, generator=torch.Generator().manual_seed(3)) - 4.0
    assert torch.is_grad_enabled()
    expected = plain(mel).detach()  # autograd on: the layer-by-layer forward
    if not onednn:
        monkeypatch.setattr(models, "_onednn_fusion", lambda x: False)
    with torch.inference_mode():
        got = plain(mel)
    assert float((got - expected).abs().max()) < 1e-5
    assert float(expected.abs().max()) > 1e-3  # not a trivially silent output


def test_tiny_experiment_generator_and_discriminators():
    block = {"generator": {"base": "v3", "upsample_initial_channel": 32},
             "discriminator_width": 0.125}
    config = resolve_experiment("tiny", block)
    model = Generator.from_config(config["generator"])
    assert model(torch.randn(1, 80, 5)).shape == (1, 1, 1280)
    mpd = MultiPeriodDiscriminator(config["periods"], 0.125)
    msd = MultiScaleDiscriminator(0.125)
    y = torch.randn(2, 1, 2048)
    for disc, count in ((mpd, 5), (msd, 3)):
        real, fake, real_maps, fake_maps = disc(y, y * 0.5)
        assert len(real) == len(fake) == len(real_maps) == count
        assert all(s.shape[0] == 2 for s in real)


def test_full_size_discriminators_match_the_paper():
    assert count_parameters(MultiPeriodDiscriminator()) == 41_105_770
    assert count_parameters(MultiScaleDiscriminator()) == 29_618_821


def test_generator_settings_are_validated():
    with pytest.raises(VestnikError, match="unknown generator"):
        resolve_generator("v4")
    with pytest.raises(VestnikError, match="multiply to 128"):
        resolve_generator({"base": "v3", "upsample_rates": [8, 4, 4]})
    with pytest.raises(VestnikError, match="unknown keys"):
        resolve_experiment("x", {"learning_rate": 1})


def test_losses_on_known_tensors():
    ones, zeros = [torch.ones(2, 3), torch.ones(4)], [torch.zeros(2, 3), torch.zeros(4)]
    assert losses.discriminator_loss(ones, zeros).item() == 0.0
    assert losses.discriminator_loss(zeros, ones).item() == pytest.approx(4.0)
    half = [torch.full((2, 3), 0.5)]
    assert losses.discriminator_loss(half, half).item() == pytest.approx(0.25 + 0.25)
    assert losses.generator_adversarial_loss(zeros).item() == pytest.approx(2.0)
    assert losses.generator_adversarial_loss(ones).item() == 0.0
    real_maps = [[torch.zeros(2, 4), torch.ones(3)], [torch.zeros(5)]]
    fake_maps = [[torch.full((2, 4), 0.5), torch.ones(3)], [torch.full((5,), -2.0)]]
    assert losses.feature_matching_loss(real_maps, fake_maps).item() == pytest.approx(2.5)
    real_mel = torch.zeros(1, 80, 10)
    fake_mel = torch.ones(1, 80, 12)
    assert losses.mel_l1_loss(real_mel, fake_mel).item() == pytest.approx(1.0)


def test_feature_matching_does_not_push_the_discriminator():
    real = torch.ones(3, requires_grad=True)
    fake = torch.zeros(3, requires_grad=True)
    losses.feature_matching_loss([[real]], [[fake]]).backward()
    assert real.grad is None and fake.grad is not None


@pytest.mark.parametrize("name", ["v2", "v3"])
def test_official_format_round_trip(tmp_path, generators, name):
    model = generators[name]
    path = tmp_path / f"g_{name}"
    save_official(model, path)
    raw = torch.load(path, weights_only=True)
    assert list(raw) == ["generator"]
    assert any(k.endswith("weight_g") for k in raw["generator"])
    loaded, meta = load_generator(path)  # V1/V2/V3 detected from the shapes
    assert meta["config"] == GENERATOR_CONFIGS[name] and not loaded.has_weight_norm
    mel = torch.randn(1, 80, 3)
    with torch.inference_mode():
        expected = model(mel)
        assert torch.allclose(loaded(mel), expected, atol=1e-5)
        exported = tmp_path / "generator.pt"
        export_generator(model, exported, {"step": 3})
        again, meta = load_generator(exported)
        assert meta["step"] == 3 and meta["config"] == GENERATOR_CONFIGS[name]
        assert torch.allclose(again(mel), expected, atol=1e-5)


def test_v2_is_told_apart_from_v1_and_config_json_is_read(tmp_path, generators):
    folder = tmp_path / "official"
    folder.mkdir()
    save_official(generators["v2"], folder / "g_02500000")
    assert load_generator(folder / "g_02500000")[1]["config"] == GENERATOR_CONFIGS["v2"]
    (folder / "config.json").write_text(json.dumps({**GENERATOR_CONFIGS["v2"], "num_mels": 80}))
    assert load_generator(folder / "g_02500000")[1]["config"] == GENERATOR_CONFIGS["v2"]


def test_mismatching_checkpoint_is_refused_with_the_list(tmp_path, generators):
    state = {k: v.clone() for k, v in generators["v3"].state_dict().items()}
    del state["conv_post.bias"]
    state["conv_pre.weight_v"] = torch.zeros(256, 80, 5)
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "broken.pt"
    torch.save({"generator": state}, path)
    with pytest.raises(VestnikError) as caught:
        load_generator(path, spec="v3")
    message = str(caught.value)
    assert "missing key conv_post.bias" in message
    assert "unexpected key extra.weight" in message
    assert "shape of conv_pre.weight_v: checkpoint (256, 80, 5), model (256, 80, 7)" in message
    assert "3 mismatches" in message
    with pytest.raises(VestnikError, match="official V1/V2/V3"):
        load_generator(path)
    save_official(generators["v3"], tmp_path / "g_v3")
    with pytest.raises(VestnikError, match="mismatches"):
        load_generator(tmp_path / "g_v3", spec="v1")


def test_init_from_official_and_exported_weights(tmp_path, generators):
    source = generators["v3"]
    save_official(source, tmp_path / "g_official")
    export_generator(source, tmp_path / "exported.pt")
    mel = torch.randn(1, 80, 4)
    with torch.inference_mode():
        expected = source(mel)
    for path in (tmp_path / "g_official", tmp_path / "exported.pt"):
        target = Generator.from_config(GENERATOR_CONFIGS["v3"])
        load_generator_weights(target, torch.load(path, weights_only=True)["generator"], path, "t")
        assert target.has_weight_norm
        with torch.inference_mode():
            assert torch.allclose(target(mel), expected, atol=1e-5)


def test_unreadable_files_are_user_errors(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(VestnikError, match="not a readable torch checkpoint"):
        load_generator(bad)
    with pytest.raises(VestnikError, match="not found"):
        load_generator(tmp_path / "missing.pt")
    torch.save({"weights": np.zeros(3).tolist()}, tmp_path / "other.pt")
    with pytest.raises(VestnikError, match="no 'generator'"):
        load_generator(tmp_path / "other.pt")
