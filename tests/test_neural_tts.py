"""The `neural` TTS engine: snakemake trains what a job names and renders it; awkward texts."""

import json
import logging

import numpy as np
import pytest

from vestnik import media
from vestnik.errors import VestnikError
from vestnik.lipsync.visemes import openness_from_events
from vestnik.tts import synthesize

from .workflow_helpers import ROOT, base_config, run_workflow

FPS = 25
TEXT = "Здравствуйте! Сегодня двадцать пятое ноября."


def micro_config(workdir) -> dict:
    """A 12-sentence eSpeak corpus, a 12-step vocoder and a 60-step acoustic model."""
    sentences = (ROOT / "resources" / "texts" / "corpus_sentences.txt").read_text(encoding="utf-8")
    corpus = workdir / "sentences.txt"
    corpus.write_text("\n".join(sentences.splitlines()[:12]) + "\n", encoding="utf-8")
    neural = {"acoustic": "micro", "vocoder": "micro", "device": "cpu"}
    jobs = {
        "neural": {"text": TEXT, "tts": {"engine": "neural", "neural": neural},
                   "chunks": {"workers": 1}},
        "no_model": {"text": "Привет.", "tts": {"engine": "neural", "neural": {
            **neural, "acoustic": "missing/model.pt"}}},
    }
    config = base_config(jobs)
    config["ruslan"].update({"espeak_sentences": str(corpus), "shards": 1, "val_size": 2})
    vocoder = config["vocoder"]
    vocoder.update({"train": [], "threads": 1})
    vocoder["experiments"]["micro"] = {
        **vocoder["experiments"]["tiny"], "steps": 12, "batch_size": 2, "accumulation": 1,
        "log_interval": 4, "val_interval": 12, "sample_interval": 12, "checkpoint_interval": 12,
        "val_items": 1, "samples": 0,
    }
    acoustic = config["acoustic"]
    acoustic.update({"train": [], "threads": 1})
    acoustic["experiments"]["micro"] = {
        "model": {"hidden": 64, "prenet_layers": 1, "encoder_layers": 1, "ffn_hidden": 128,
                  "duration_hidden": 64, "decoder_hidden": 64, "decoder_layers": 2},
        "batch_size": 10, "lr": 0.005, "warmup_steps": 10, "steps": 60, "log_interval": 10,
        "val_interval": 60, "checkpoint_interval": 60, "val_items": 2, "plots": 1,
    }
    return config


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("neural_tts")
    config = micro_config(workdir)
    result = run_workflow(workdir, config, "results/jobs/neural/final.mp4",
                          "results/jobs/no_model/final.mp4")
    return workdir, result


@pytest.mark.slow
def test_neural_job_renders_an_mp4_with_trained_models(rendered):
    workdir, result = rendered
    job = workdir / "results" / "jobs" / "neural"
    assert (job / "final.mp4").is_file(), result.stderr[-3000:]
    for model in ("results/models/acoustic/micro/model.pt",
                  "results/models/vocoder/micro/generator.pt"):
        assert (workdir / model).is_file()
    assert list((workdir / "results/models/acoustic/micro/plots").glob("*/*_alignment.png"))
    info = media.probe(job / "final.mp4")
    speech = media.probe(job / "speech.wav", count_frames=False)
    assert abs(info["duration"] - speech["duration"]) <= 1 / FPS


@pytest.mark.slow
def test_speech_json_has_ipa_phonemes_that_move_the_mouth(rendered):
    workdir, _ = rendered
    speech = json.loads((workdir / "results/jobs/neural/speech.json").read_text(encoding="utf-8"))
    assert speech["engine"] == "neural" and speech["sample_rate"] == 22050
    sentences = [e for e in speech["events"] if e["type"] == "sentence"]
    phonemes = [e for e in speech["events"] if e["type"] == "phoneme"]
    assert [e["text"] for e in sentences] == ["Здравствуйте!", "Сегодня двадцать пятое ноября."]
    assert {"z", "d", "r", "ˈɑ", "_"} <= {e["symbol"] for e in phonemes}
    assert all(e["end"] > e["start"] for e in phonemes)
    assert max(e["end"] for e in phonemes) <= speech["duration"] + 1e-6
    # the second sentence starts after the first one and the pause between them
    assert sentences[1]["start"] >= sentences[0]["end"] + 0.3
    frames = int(speech["duration"] * FPS)
    openness = openness_from_events(speech["events"], 0, frames, FPS)
    assert openness.max() > 0.3 and openness.min() == 0.0


@pytest.mark.slow
def test_job_with_a_missing_model_fails_alone_and_says_why(rendered):
    workdir, result = rendered
    assert not (workdir / "results/jobs/no_model/speech.wav").exists()
    assert "job 'no_model'" in result.stderr and "acoustic model not found" in result.stderr


@pytest.fixture(scope="module")
def neural_settings(rendered):
    workdir, _ = rendered
    return {"engine": "neural", "neural": {
        "acoustic": str(workdir / "results/models/acoustic/micro/model.pt"),
        "vocoder": str(workdir / "results/models/vocoder/micro/generator.pt"),
        "device": "cpu", "sentence_pause": 0.2,
    }}


@pytest.mark.slow
@pytest.mark.parametrize("text", ["Привет, world! Это iPhone.", "В 2026 году 15 мая.",
                                  "Ура 😀 да!"])
def test_latin_digits_and_emoji_are_spoken(neural_settings, text):
    speech = synthesize(text, neural_settings, job="odd")
    assert speech.duration > 0.3 and np.all(np.isfinite(speech.samples))
    assert any(e["type"] == "phoneme" for e in speech.events)


@pytest.mark.parametrize("text", ["... !!! ---", "😀👍", "   "])
@pytest.mark.slow
def test_nothing_speakable_is_refused_with_the_job_named(neural_settings, text):
    with pytest.raises(VestnikError, match="job 'odd'.*nothing speakable"):
        synthesize(text, neural_settings, job="odd")


@pytest.mark.slow
def test_ten_thousand_characters_are_spoken_in_pieces(neural_settings, caplog):
    sentence = ("Правительство утвердило новый план развития железных дорог, и работы "
                "начнутся весной. ")
    run_on = "и мост через реку построят к осени, "
    text = sentence * (5_000 // len(sentence)) + run_on * (5_000 // len(run_on))
    text = text + "и" * (10_000 - len(text))
    # a short speaking time (0.1 frame per token) keeps the vocoder's share of the test small
    settings = {**neural_settings, "neural": {**neural_settings["neural"],
                                              "length_scale": 0.1, "max_chars": 2000}}
    with caplog.at_level(logging.WARNING, logger="vestnik.acoustic"):
        speech = synthesize(text, settings)
    sentences = [e for e in speech.events if e["type"] == "sentence"]
    assert len(text) == 10_000 and len(sentences) >= 50
    assert all(len(e["text"]) <= 2000 for e in sentences)
    assert max(len(e["text"]) for e in sentences) > 1500  # the run-on sentence, cut at commas
    assert sentences[-1]["end"] == pytest.approx(speech.duration, abs=1e-3)
    assert not caplog.records
