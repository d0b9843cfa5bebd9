"""Voice folders: the recipe, building through the gate, ONNX against torch, checked loading."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vestnik.acoustic import symbols
from vestnik.acoustic.checkpoint import export_model, load_acoustic
from vestnik.acoustic.config import model_defaults
from vestnik.acoustic.model import AcousticModel
from vestnik.errors import VestnikError
from vestnik.vocoder.checkpoint import export_generator
from vestnik.vocoder.config import resolve_generator
from vestnik.vocoder.models import Generator
from vestnik.voice import package
from vestnik.voice.build import build_voice

ROOT = Path(__file__).resolve().parents[1]
TINY = {"hidden": 64, "prenet_layers": 1, "encoder_layers": 2, "ffn_hidden": 128,
        "duration_hidden": 64, "decoder_hidden": 64, "decoder_layers": 3}
TEXT = "Старый з+амок стоял на горе в 2026 году, и 3 окна горели."
PASSING = {"vocoder": {"pesq_wb": 3.1, "utterances": 2}, "acoustic": {"boundary_error_ms": 21.0}}
FAILING = {"vocoder": {"pesq_wb": 1.4, "utterances": 2}, "acoustic": {"boundary_error_ms": 48.0}}


# --- the recipe ----------------------------------------------------------------------------------

def test_voice_recipe_fits_the_schema_and_the_cpu_target():
    """config/voice.yaml, merged over config/config.yaml as snakemake merges it, is valid; its
    generator is no bigger than HiFi-GAN V2 and its acoustic graphs fit a voice file."""
    from vestnik.acoustic.config import resolve_experiment as acoustic_experiment
    from vestnik.config import load_configs
    from vestnik.vocoder.config import resolve_experiment as vocoder_experiment
    from vestnik.vocoder.models import count_parameters

    config = load_configs(ROOT / "config/config.yaml", ROOT / "config/voice.yaml")
    assert config["ruslan"]["source"] == "festvox-ru"
    assert config["defaults"]["tts"]["engine"] == "espeak"  # the default stays until one ships
    vocoder = vocoder_experiment("voice", config["vocoder"]["experiments"]["voice"])
    acoustic = acoustic_experiment("voice", config["acoustic"]["experiments"]["voice"])
    assert "voice" in config["vocoder"]["train"] and "voice" in config["acoustic"]["train"]
    assert vocoder["bf16"] and acoustic["bf16"]
    generator = Generator.from_config(vocoder["generator"]).remove_weight_norm()
    v2 = Generator.from_config(resolve_generator("v2")).remove_weight_norm()
    assert count_parameters(generator) <= count_parameters(v2)
    model = AcousticModel(len(symbols.SYMBOLS), acoustic["model"])
    assert 4 * sum(p.numel() for p in model.parameters()) < 0.97 * package.MAX_FILE_BYTES
    from vestnik.config import check_job

    assert check_job(config, "voice_demo")["tts"]["engine"] == "voice"


def test_cpu_recipe_keeps_the_voice_networks_with_smaller_batches():
    """config/voice-cpu.yaml, given after config/voice.yaml, changes batches and steps only: the
    networks trained on a CPU are the ones a GPU window trains."""
    from vestnik.acoustic.config import resolve_experiment as acoustic_experiment
    from vestnik.config import load_configs
    from vestnik.vocoder.config import resolve_experiment as vocoder_experiment

    gpu = load_configs(ROOT / "config/config.yaml", ROOT / "config/voice.yaml")
    cpu = load_configs(ROOT / "config/config.yaml", ROOT / "config/voice.yaml",
                       ROOT / "config/voice-cpu.yaml")
    for resolve, stage in ((vocoder_experiment, "vocoder"), (acoustic_experiment, "acoustic")):
        on_gpu = resolve("voice", gpu[stage]["experiments"]["voice"])
        on_cpu = resolve("voice", cpu[stage]["experiments"]["voice"])
        assert on_cpu["batch_size"] < on_gpu["batch_size"] and not on_cpu["bf16"]
        network = "generator" if stage == "vocoder" else "model"
        assert on_cpu[network] == on_gpu[network]


# --- building ------------------------------------------------------------------------------------

def _models(folder: Path, seed: int = 0) -> tuple[Path, Path]:
    """A random acoustic model whose tokens last 2-4 frames and whose decoder is not silent,
    and a small random generator: speed and agreement do not depend on training."""
    torch.manual_seed(seed)
    model = AcousticModel(len(symbols.SYMBOLS), {**model_defaults(), **TINY})
    with torch.no_grad():
        model.duration.out.weight.normal_(0.0, 0.05)
        model.duration.out.bias.fill_(math.log(3.0))
        model.decoder.out.weight.normal_(0.0, 0.05)
    folder.mkdir(parents=True, exist_ok=True)
    export_model(model, folder / "model.pt", {"experiment": "tiny", "state": "abc", "step": 1,
                                              "steps": 1})
    generator = Generator.from_config(resolve_generator({"base": "v3",
                                                         "upsample_initial_channel": 16}))
    export_generator(generator, folder / "generator.pt", {"experiment": "tiny", "step": 1})
    return folder / "model.pt", folder / "generator.pt"


def _corpus(folder: Path) -> tuple[Path, Path]:
    """A corpus root (licence notice only) and a split of corpus ids (the builder reads ids)."""
    root = folder / "corpus"
    root.mkdir(parents=True)
    (root / "COPYRIGHT").write_text("Copyright 2005 Someone, BSD-like.\n")
    (root / "metadata_RUSLAN_22200.csv").write_text("ru_0001|a\n")
    (folder / "train.tsv").write_text("id\ttext\nru_0003\tx\nru_0004\ty\n")
    (folder / "val.tsv").write_text("id\ttext\nru_0001\tx\nru_0002\ty\n")
    return root, folder / "val.tsv"


@pytest.fixture(scope="module")
def voice_folder(tmp_path_factory):
    base = tmp_path_factory.mktemp("voice")
    acoustic, generator = _models(base / "models")
    root, val = _corpus(base)
    return build_voice(base / "voices" / "tiny", acoustic=acoustic, generator=generator,
                       val_tsv=val, corpus_root=root, metrics=PASSING)


def test_built_folder_holds_every_file_with_its_provenance(voice_folder):
    voice = package.read_voice(voice_folder)
    assert sorted(p.name for p in voice_folder.iterdir()) == sorted(
        (*package.FILES, package.MANIFEST))
    assert (voice_folder / "val_ids.txt").read_text().split() == ["ru_0001", "ru_0002"]
    assert "BSD-like" in (voice_folder / "COPYRIGHT").read_text()
    readme = (voice_folder / "README.md").read_text()
    assert "passes the shipping gate" in readme and "BSD-like" in readme
    assert voice.manifest["gate"]["passed"] and not voice.manifest["gate"]["forced"]
    assert voice.manifest["provenance"]["corpus"]["val_sha256"]
    assert max(voice.manifest["onnx_max_difference"].values()) < 1e-3
    metrics = json.loads((voice_folder / "metrics.json").read_text())
    assert metrics["vocoder"]["pesq_wb"] == PASSING["vocoder"]["pesq_wb"]


def test_onnx_voice_speaks_stress_marks_and_numbers_like_torch(voice_folder):
    """The same text through onnxruntime and through torch: same durations, same events,
    audio within 1e-3; the stress mark picks the vowel, the numbers are spoken as words."""
    from vestnik.acoustic.synth import NeuralVoice
    from vestnik.tts.voice import OnnxVoice

    onnx = OnnxVoice(voice_folder, threads=1).synthesize(TEXT)
    torch_voice = NeuralVoice(voice_folder / "acoustic.pt", voice_folder / "generator.pt", "cpu")
    reference = torch_voice.synthesize(TEXT)
    assert onnx.engine == "voice" and onnx.sample_rate == 22050
    assert onnx.events == reference.events
    assert onnx.samples.shape == reference.samples.shape
    assert np.max(np.abs(onnx.samples - reference.samples)) < 1e-3
    assert np.abs(onnx.samples).max() > 0.01
    assert "две тысячи" in onnx.text and "три" in onnx.text and "2026" not in onnx.text
    phones = [e["symbol"] for e in onnx.events if e["type"] == "phoneme"]
    other = OnnxVoice(voice_folder, threads=1).synthesize(TEXT.replace("з+амок", "зам+ок"))
    other_phones = [e["symbol"] for e in other.events if e["type"] == "phoneme"]
    castle = phones[phones.index("z"):phones.index("z") + 5]  # з+амок
    lock = other_phones[other_phones.index("z"):other_phones.index("z") + 5]  # зам+ок
    assert castle[1].startswith("ˈ") and not any(p.startswith("ˈ") for p in castle[2:])
    assert not lock[1].startswith("ˈ") and any(p.startswith("ˈo") for p in lock[2:])


def test_engine_runs_a_voice_folder_without_torch(voice_folder):
    """`tts: {engine: voice}` through the engine registry, in a process that never imports
    torch."""
    code = (
        "import sys\n"
        "from vestnik.tts import synthesize\n"
        f"settings = {{'engine': 'voice', 'voice': {{'path': {str(voice_folder)!r}}}}}\n"
        f"s = synthesize({TEXT!r}, settings, job='j')\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print(s.engine, round(s.duration, 2), len(s.events))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT, env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin"},
                            timeout=120)
    assert result.returncode == 0, result.stderr
    engine, seconds, events = result.stdout.split()
    assert engine == "voice" and float(seconds) > 1.0 and int(events) > 20


def test_engine_names_the_voice_files_as_its_weights(voice_folder):
    from vestnik import engines

    settings = {"tts": {"engine": "voice", "voice": {"path": str(voice_folder)}}}
    files = {key: Path(w.path).name for key, w in engines.weight_files(settings, "tts").items()}
    assert files == {"path": "voice.json"}
    assert not engines.takes_device_slot(settings, "tts")
    # the service pins the weights by setting: a voice.json path speaks as the folder does
    from vestnik.service.catalog import engine_info
    from vestnik.tts.voice import synthesize

    config = {"defaults": settings}
    info = engine_info(config, "tts", "voice", ROOT)
    assert info.available, info.reason
    pinned = info.pinned()["voice"]
    assert pinned == {"path": str((voice_folder / "voice.json").resolve())}
    speech = synthesize("Добрый день.", **{**engines_settings(), **pinned})
    assert speech.engine == "voice"
    missing = engine_info({"defaults": {"tts": {"voice": {"path": "nowhere"}}}}, "tts", "voice",
                          ROOT)
    assert not missing.available and "voice.json" in missing.reason


def engines_settings() -> dict:
    from vestnik.config import engine_settings

    return engine_settings("tts", "voice", {})


@pytest.mark.parametrize("name", ["generator.onnx", "encoder.onnx", "val_ids.txt"])
def test_a_missing_or_corrupt_voice_file_is_named(voice_folder, tmp_path, name):
    import shutil

    from vestnik.tts.voice import OnnxVoice

    copy = tmp_path / "copy"
    shutil.copytree(voice_folder, copy)
    (copy / name).unlink()
    with pytest.raises(VestnikError, match=f"voice file missing: {name}"):
        OnnxVoice(copy)
    shutil.copyfile(voice_folder / name, copy / name)
    data = bytearray((copy / name).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / name).write_bytes(bytes(data))
    with pytest.raises(VestnikError, match=f"voice file corrupt: {name}") as error:
        OnnxVoice(copy)
    assert str(copy / name) in str(error.value)


def test_missing_manifest_or_folder_is_named(voice_folder, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(voice_folder, copy)
    (copy / "voice.json").write_text("{not json")
    with pytest.raises(VestnikError, match="voice file corrupt: voice.json"):
        package.read_voice(copy)
    (copy / "voice.json").unlink()
    with pytest.raises(VestnikError, match="voice file missing: voice.json"):
        package.read_voice(copy)
    with pytest.raises(VestnikError, match="voice folder not found"):
        package.read_voice(tmp_path / "nowhere")


def test_gate_refuses_a_voice_under_the_bar_unless_forced(tmp_path):
    acoustic, generator = _models(tmp_path / "models")
    root, val = _corpus(tmp_path)
    out = tmp_path / "voices" / "weak"
    out.parent.mkdir()
    with pytest.raises(VestnikError, match=r"not good enough to ship.*PESQ-wb 1.400.*48.0 ms"):
        build_voice(out, acoustic=acoustic, generator=generator, val_tsv=val, corpus_root=root,
                    metrics=FAILING)
    assert not out.exists() and not list(out.parent.iterdir())  # no half-built folder left
    forced = build_voice(out, acoustic=acoustic, generator=generator, val_tsv=val,
                         corpus_root=root, metrics=FAILING, force=True)
    gate = package.read_voice(forced).manifest["gate"]
    assert gate["forced"] and not gate["passed"] and len(gate["problems"]) == 2
    assert "NOT SHIPPABLE" in (forced / "README.md").read_text()
    assert package.gate_problems(PASSING) == []
    assert package.gate_problems({"vocoder": {"pesq_wb": 2.5}, "acoustic": {}}) == [
        "no held-out boundary error (the corpus needs phone labels)"]


def test_builder_refuses_held_out_ids_that_were_trained_on_and_a_missing_notice(tmp_path):
    acoustic, generator = _models(tmp_path / "models")
    root, val = _corpus(tmp_path)
    (tmp_path / "train.tsv").write_text("id\ttext\nru_0002\tx\n")
    with pytest.raises(VestnikError, match="held-out ids are also in the training split"):
        build_voice(tmp_path / "v", acoustic=acoustic, generator=generator, val_tsv=val,
                    corpus_root=root, metrics=PASSING)
    (tmp_path / "train.tsv").write_text("id\ttext\nru_0003\tx\n")
    (root / "COPYRIGHT").unlink()
    with pytest.raises(VestnikError, match="no licence notice"):
        build_voice(tmp_path / "v", acoustic=acoustic, generator=generator, val_tsv=val,
                    corpus_root=root, metrics=PASSING)


def test_weights_over_the_file_limit_are_stored_in_fp16(tmp_path, monkeypatch):
    from vestnik.voice import build

    acoustic, _ = _models(tmp_path / "models")
    monkeypatch.setattr(build, "MAX_FILE_BYTES", acoustic.stat().st_size - 1)
    stored = build._weights_file(acoustic, tmp_path / "acoustic.pt", "model")
    assert stored == {"dtype": "float16"}
    assert (tmp_path / "acoustic.pt").stat().st_size < 0.6 * acoustic.stat().st_size
    half, _ = load_acoustic(tmp_path / "acoustic.pt")
    full, _ = load_acoustic(acoustic)
    tokens = torch.tensor([symbols.intersperse(symbols.text_tokens("Добрый день.").ids)])
    with torch.inference_mode():
        a, da, _ = full.infer(tokens)
        b, _, _ = half.infer(tokens, durations=da)
    assert float((a - b).abs().max()) < 0.05
    assert half.encoder.embed.weight.dtype == torch.float32


# --- from trained models -------------------------------------------------------------------------

@pytest.mark.slow
def test_voice_from_tiny_trained_models_is_scored_and_speaks(espeak_corpus, tmp_path):
    """Tiny models trained by the project's loop on an eSpeak corpus, scored by the builder's
    own held-out evaluation (forced past the gate: minutes of CPU do not reach the bar)."""
    from vestnik.acoustic.train import train_acoustic
    from vestnik.tts.voice import OnnxVoice
    from vestnik.vocoder.train import train_vocoder

    data = espeak_corpus(12, 2, 1)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        acoustic = train_acoustic("t", {"model": TINY, "batch_size": 5, "steps": 30,
                                        "warmup_steps": 5, "log_interval": 10,
                                        "val_interval": 30, "checkpoint_interval": 30,
                                        "plots": 0, "device": "cpu"},
                                  data / "train.tsv", data / "val.tsv", tmp_path / "a", 1)
        generator = train_vocoder("t", {"generator": {"base": "v3",
                                                      "upsample_initial_channel": 16},
                                        "discriminator_width": 0.125, "segment": 2048,
                                        "batch_size": 2, "accumulation": 1, "steps": 6,
                                        "log_interval": 3, "val_interval": 6,
                                        "sample_interval": 6, "checkpoint_interval": 6,
                                        "val_items": 2, "samples": 0, "device": "cpu"},
                                  data / "train.tsv", data / "val.tsv", tmp_path / "g", 1)
    finally:
        torch.set_num_threads(before)
    root = data.parent / "ruslan"
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "COPYRIGHT").write_text("test notice\n")
    (corpus / "ruslan_dataset").symlink_to(root / "ruslan_dataset")
    out = build_voice(tmp_path / "voices" / "t", acoustic=acoustic, generator=generator,
                      val_tsv=data / "val.tsv", corpus_root=corpus, force=True)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["vocoder"]["utterances"] == 2 and metrics["vocoder"]["mel_l1"] > 0
    assert metrics["acoustic"]["mcd_db"] > 0 and metrics["gate"]["forced"]
    speech = OnnxVoice(out, threads=1).synthesize(TEXT)
    assert speech.duration > 1.0


@pytest.mark.slow
def test_workflow_job_speaks_with_a_voice_folder(voice_folder, tmp_path):
    """A job with `tts: {engine: voice}` gets its speech from the folder through the tts rule;
    one naming a missing folder fails alone, naming the missing file."""
    from tests.workflow_helpers import base_config, run_workflow

    config = base_config({
        "spoken": {"text": TEXT, "tts": {"engine": "voice", "voice": {"path": str(voice_folder),
                                                                      "threads": 1}}},
        "lost": {"text": TEXT, "tts": {"engine": "voice",
                                       "voice": {"path": str(tmp_path / "no-voice")}}},
    })
    result = run_workflow(tmp_path, config, "results/jobs/spoken/speech.json",
                          "results/jobs/lost/speech.json", extra=("--keep-going",))
    speech = json.loads((tmp_path / "results/jobs/spoken/speech.json").read_text())
    assert speech["engine"] == "voice" and speech["duration"] > 1.0
    assert any(e["type"] == "phoneme" for e in speech["events"])
    assert result.returncode != 0
    log = (tmp_path / "logs/jobs/lost/tts.log").read_text()
    assert "voice folder not found" in log and "no-voice" in log


def test_cli_exports_through_the_gate_and_checks_a_folder(tmp_path, capsys):
    from vestnik.cli import main

    acoustic, generator = _models(tmp_path / "models")
    root, val = _corpus(tmp_path)
    for kind, figures in FAILING.items():
        (tmp_path / f"{kind}.json").write_text(json.dumps(figures))
    args = ["voice", "export", "weak", "--acoustic", str(acoustic), "--vocoder", str(generator),
            "--config", str(ROOT / "config/voice.yaml"), "--out", str(tmp_path / "weak"),
            "--val", str(val), "--corpus-root", str(root),
            "--vocoder-metrics", str(tmp_path / "vocoder.json"),
            "--acoustic-metrics", str(tmp_path / "acoustic.json")]
    assert main(args) != 0
    assert "not good enough to ship" in capsys.readouterr().err
    assert main([*args, "--force", "--trained-on", "test CPU"]) == 0
    assert "trained on: test CPU" in (tmp_path / "weak" / "README.md").read_text()
    assert main(["voice", "check", str(tmp_path / "weak"), "--text", TEXT]) == 0
    out = capsys.readouterr().out
    assert "every file matches voice.json (NOT shippable" in out and "spoke" in out


@pytest.mark.slow
def test_gpu_script_rehearses_end_to_end_on_the_cpu(festvox_package, tmp_path):
    """bench/voice_gpu.py: a bundle of 40 recordings, then `train --quick` from it alone (the
    bundle's own source and config): corpus steps, both trainings for a short budget, held-out
    scores, a voice folder whose graphs match torch, and what it returns."""
    script = ROOT / "bench" / "voice_gpu.py"
    env = {"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "HOME": str(Path.home())}
    bundle, out = tmp_path / "bundle", tmp_path / "out"
    subprocess.run([sys.executable, str(script), "pack", "--bundle", str(bundle),
                    "--festvox-root", str(festvox_package), "--subset", "40", "--no-wheels"],
                   check=True, capture_output=True, env=env, timeout=600)
    packed = json.loads((bundle / "bundle.json").read_text())
    assert packed["corpus"]["recordings"] == 40
    assert packed["corpus"]["max_length_difference_samples"] == 0
    result = subprocess.run([sys.executable, str(bundle / "voice_gpu.py"), "train", "--bundle",
                             str(bundle), "--out", str(out), "--work", str(tmp_path / "work"),
                             "--quick", "--budget", "20", "--probe", "4", "--eval-limit", "4"],
                            capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == [
        "acoustic.pt", "generator.pt", "report.tar.gz", "summary.json"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["acoustic"]["steps"] >= 4 and summary["vocoder"]["steps"] >= 4
    assert summary["corpus"]["val"] == 16
    assert max(summary["held_out"]["onnx_max_difference"].values()) < 1e-3
    assert summary["held_out"]["gate_problems"]  # minutes of CPU do not reach the bar
    load_acoustic(out / "acoustic.pt")


def test_export_reads_the_training_wall_time_from_the_benchmarks(tmp_path, monkeypatch):
    from vestnik.tts.neural import model_files
    from vestnik.voice.cli import _benchmarked_wall_time

    monkeypatch.chdir(tmp_path)
    bench = tmp_path / "results/models/benchmarks"
    bench.mkdir(parents=True)
    (bench / "acoustic_voice_train.tsv").write_text("s\th:m:s\tmax_rss\n412.5\t0:06:52\t900\n")
    files = model_files({"acoustic": "voice", "vocoder": "voice"})
    assert _benchmarked_wall_time(files) == "acoustic 412 s (snakemake benchmarks)"
    assert _benchmarked_wall_time(model_files({"acoustic": "a.pt", "vocoder": "g.pt"})) is None
