"""Acoustic model: symbol table, phoneme timings, model files, overfitting, resume after SIGKILL."""

import hashlib
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from vestnik.acoustic import symbols
from vestnik.acoustic.checkpoint import export_model, load_acoustic
from vestnik.acoustic.config import BEST_METRIC
from vestnik.acoustic.model import AcousticModel
from vestnik.acoustic.synth import NeuralVoice, phoneme_events
from vestnik.acoustic.train import train_acoustic
from vestnik.errors import VestnikError
from vestnik.io import read_tsv
from vestnik.lipsync.visemes import VOWEL_OPEN, phoneme_openness
from vestnik.report import write_experiment_page
from vestnik.training import CsvLog, load_state

ROOT = Path(__file__).resolve().parents[1]
TINY_MODEL = {
    "hidden": 64, "prenet_layers": 1, "encoder_layers": 1, "ffn_hidden": 128,
    "duration_hidden": 64, "decoder_hidden": 64, "decoder_layers": 3,
}


@pytest.fixture(scope="module")
def corpus(espeak_corpus):
    """Twelve utterances: ten for training, two for validation."""
    return espeak_corpus(12, 2, 1)


@pytest.fixture
def one_thread():
    """Training runs on one thread (bitwise reproducible); the suite's setting is restored."""
    before = torch.get_num_threads()
    yield 1
    torch.set_num_threads(before)


# --- symbols -------------------------------------------------------------------------------------

def test_table_is_fixed_for_its_version():
    """Reordering or changing the table must come with a new VERSION (old models are refused)."""
    digest = hashlib.sha256("\n".join(symbols.SYMBOLS).encode()).hexdigest()[:16]
    assert (symbols.VERSION, len(symbols.SYMBOLS), digest) == ("ru-ipa-1", 87, "90eedc6a319c8cea")
    assert symbols.SYMBOLS[0] == symbols.PAD and len(set(symbols.SYMBOLS)) == len(symbols.SYMBOLS)


def test_tokenize_attaches_stress_and_palatalisation():
    tokens = symbols.tokenize("zdrˈɑstvujtʲi! ˈja rʌsskaʒˈu, ɪ ʃʲ")
    assert tokens.symbols == [
        "z", "d", "r", "ˈɑ", "s", "t", "v", "u", "j", "tʲ", "i", "!",
        "j", "ˈa", " ", "r", "ʌ", "s", "s", "k", "a", "ʒ", "ˈu", ",", "ɪ", " ", "ʃʲ",
    ]
    assert tokens.unknown == set()


def test_foreign_symbols_fold_and_unknown_ones_are_dropped_with_one_warning(caplog):
    assert symbols.tokenize("wˈɜːld θɪŋ").symbols == ["v", "ˈɵ", "l", "d", " ", "s", "ɪ", "n"]
    tokens = symbols.tokenize("ʘaǃ ʘo")
    assert tokens.symbols == ["a", " ", "o"] and tokens.unknown == {"ʘ", "ǃ"}
    with caplog.at_level(logging.WARNING, logger="vestnik.acoustic"):
        symbols.warn_unknown(tokens.unknown, "test")
    assert len(caplog.records) == 1 and "'ʘ'" in caplog.text and "'ǃ'" in caplog.text


@pytest.mark.parametrize(("text", "expected"), [
    ("В 2026 году.", {"v", "ˈo", "."}),
    ("Привет, world!", {"v", "ˈɵ", "l", "!", ","}),
    ("😀 да", {"d", "ˈɑ"}),
    ("…!!! ---", set()),
])
def test_text_tokens_of_awkward_texts(text, expected):
    from vestnik.text.normalize import normalize

    tokens = symbols.text_tokens(normalize(text))
    assert expected <= set(tokens.symbols)
    assert all(symbol in symbols.SYMBOL_ID for symbol in tokens.symbols)


@pytest.mark.parametrize("text", ["з+амок и зам+ок.", "за\u0301мок и замо\u0301к."])
def test_training_tokens_take_the_marked_stress_and_never_read_the_mark(text):
    """A transcript's '+' (before the vowel) or U+0301 (after it) stresses that vowel in the
    model's training tokens; eSpeak alone says "зам+ок" for both words, and the mark is not
    spoken as "плюс"."""
    from vestnik.acoustic.data import text_ids

    _, tokens = text_ids(text, add_blank=False)
    words = " ".join(tokens.symbols).split("   ")
    assert words == ["z ˈɑ m ʌ k", "ɪ", "z a m ˈo k ."]
    assert "p" not in tokens.symbols and "lʲ" not in tokens.symbols


def test_utterances_training_cannot_use_are_left_out_with_their_reason(tmp_path, caplog):
    """A transcript with nothing to say ("…", "—"), one longer than max_frames and one with
    fewer frames than tokens are left out, counted by reason in the log; digits are spelled."""
    from vestnik.acoustic.data import read_items, text_ids
    from vestnik.io import write_tsv

    split = tmp_path / "train.tsv"
    rows = [("a", "В 2026 году.", 400), ("b", "… — !", 300), ("c", "Длинная фраза.", 5000),
            ("d", "Очень длинная фраза для трёх кадров.", 3)]
    write_tsv(split, ("id", "mel", "frames", "text"),
              [{"id": i, "mel": f"{i}.npy", "frames": n, "text": t} for i, t, n in rows])
    with caplog.at_level(logging.INFO, logger="vestnik.acoustic"):
        items = read_items(split, add_blank=True, max_frames=1000)
    assert [item.id for item in items] == ["a"]
    spelled = text_ids("В две тысячи двадцать шестом году.", add_blank=False)[1]
    assert items[0].phonemes == " ".join(spelled.symbols)
    assert "{'no phonemes': 1, 'too long': 1, 'too short': 1}" in caplog.text
    write_tsv(split, ("id", "mel", "frames", "text"), [{"id": "b", "mel": "b.npy",
                                                       "frames": 300, "text": "…"}])
    with pytest.raises(VestnikError, match="no usable utterances"):
        read_items(split, add_blank=True, max_frames=1000)


def test_every_phoneme_has_a_viseme():
    """Lip-sync reads the IPA symbols of speech.json: vowels open by height, stress opens more."""
    for symbol in symbols.SYMBOLS:
        if symbols.is_phoneme(symbol):
            assert phoneme_openness(symbol) is not None, symbol
    for vowel in symbols.VOWELS:
        assert vowel in VOWEL_OPEN, vowel
        assert phoneme_openness("ˈ" + vowel) > phoneme_openness(vowel) > 0.22
    assert phoneme_openness("p") == 0.0 and phoneme_openness("pʲ") == 0.0
    assert phoneme_openness("_") == 0.0


def test_phoneme_events_give_gaps_to_the_phoneme_before_and_merge_pauses():
    frame = 256 / 22050
    events = phoneme_events(["d", "ˈɑ", " ", "n", "ʲ", ",", "."][:6] + ["."], [2, 5, 1, 3, 0, 4, 2])
    assert [e["symbol"] for e in events] == ["d", "ˈɑ", "n", "_"]
    assert events[1]["end"] == pytest.approx(8 * frame, abs=1e-6)
    assert events[2]["start"] == pytest.approx(8 * frame, abs=1e-6)
    assert events[3]["start"] == pytest.approx(11 * frame, abs=1e-6)
    assert events[3]["end"] == pytest.approx(17 * frame, abs=1e-6)


# --- model files ---------------------------------------------------------------------------------

def _tiny_model_file(path: Path) -> Path:
    torch.manual_seed(0)
    export_model(AcousticModel(len(symbols.SYMBOLS), {**_model_defaults(), **TINY_MODEL}), path)
    return path


def _model_defaults() -> dict:
    from vestnik.acoustic.config import model_defaults

    return model_defaults()


def _tiny_vocoder_file(path: Path, mel: dict | None = None) -> Path:
    from vestnik.vocoder.checkpoint import export_generator
    from vestnik.vocoder.config import resolve_generator
    from vestnik.vocoder.models import Generator

    torch.manual_seed(0)
    shape = resolve_generator({"base": "v3", "upsample_initial_channel": 16})
    generator = Generator.from_config(shape)
    export_generator(generator, path)
    if mel is not None:
        data = torch.load(path, weights_only=True)
        data["mel"] = {**data["mel"], **mel}
        torch.save(data, path)
    return path


def test_duration_loss_is_minimised_by_the_mean_frame_count_not_the_median():
    """Durations are right-skewed (a comma's pause is 2 frames or 60): a loss whose minimiser
    is the median (squared error of log durations) makes utterances too short by the gap between
    the mean and the median. The deviance's optimum is the mean, so predictions sum right."""
    from vestnik.acoustic.model import duration_deviance

    frames = torch.tensor([2.0, 3.0, 3.0, 4.0, 5.0, 8.0, 15.0, 40.0])
    for centre, slope in ((frames.mean(), 0.0), (torch.exp(torch.log(frames).mean()), -1.0)):
        logw = torch.log(centre).repeat(frames.numel()).requires_grad_()
        duration_deviance(logw, frames).sum().backward()
        gradient = float(logw.grad.sum())
        assert gradient == pytest.approx(0.0, abs=1e-4) if slope == 0.0 else gradient < -10
    exact = duration_deviance(torch.log(frames), frames)
    assert torch.allclose(exact, torch.zeros_like(exact), atol=1e-5)
    empty = duration_deviance(torch.tensor([0.5]), torch.tensor([0.0]))
    assert torch.isfinite(empty).all() and float(empty) == pytest.approx(2 * np.exp(0.5))


def test_model_from_another_symbol_table_is_refused(tmp_path):
    path = _tiny_model_file(tmp_path / "model.pt")
    data = torch.load(path, weights_only=True)
    data["symbols"] = {"version": "ru-ipa-0", "symbols": data["symbols"]["symbols"][:-1]}
    torch.save(data, path)
    with pytest.raises(VestnikError, match="symbol table 'ru-ipa-0'.*retrain"):
        load_acoustic(path)


def test_vocoder_with_other_mel_settings_is_refused(tmp_path):
    model = _tiny_model_file(tmp_path / "model.pt")
    vocoder = _tiny_vocoder_file(tmp_path / "generator.pt", mel={"fmax": 11025.0, "hop": 275})
    with pytest.raises(VestnikError, match=r"different mel settings.*fmax 8000.0 vs 11025.0"):
        NeuralVoice(model, vocoder, "cpu")


def test_windowed_vocoding_matches_one_pass(tmp_path):
    """The vocoder runs window by window with context, and the seams do not show."""
    voice = NeuralVoice(_tiny_model_file(tmp_path / "model.pt"),
                        _tiny_vocoder_file(tmp_path / "generator.pt"), "cpu")
    mel = np.random.default_rng(0).normal(-5.0, 2.0, size=(80, 700)).astype(np.float32)
    windowed = voice.vocode(mel)
    with torch.inference_mode():
        whole = voice.vocoder(torch.from_numpy(mel)[None]).reshape(-1).clamp(-1, 1).numpy()
    assert windowed.shape == whole.shape == (700 * 256,)
    assert np.max(np.abs(windowed - whole)) < 1e-4


# --- training ------------------------------------------------------------------------------------

OVERFIT = {
    "model": TINY_MODEL, "batch_size": 10, "lr": 0.005, "warmup_steps": 10, "steps": 150,
    "log_interval": 25, "val_interval": 75, "checkpoint_interval": 75, "plots": 1,
    "stats_items": 100, "device": "cpu",
}


@pytest.mark.slow
def test_overfits_ten_utterances(corpus, tmp_path, one_thread):
    """Ten utterances, fitted by a 190k-parameter model in 150 steps.

    The bar is half the mel L1 of the best constant spectrum (each channel's median over these
    utterances, about 1.45 log-mel units): beating it by that much needs a text-to-frame
    alignment that puts each phoneme's spectrum where it is spoken. The free-running length
    (predicted durations) must also land within 10% of the recordings.
    """
    train = corpus / "train.tsv"
    model_path = train_acoustic("overfit", OVERFIT, train, train, tmp_path / "run", threads=1)
    rows = [r for r in CsvLog(tmp_path / "run" / "train_log.csv", []).read() if r["val_mel_l1"]]
    assert [int(r["step"]) for r in rows] == [75, 150]
    final = rows[-1]
    mels = np.concatenate([np.load(r["mel"]) for r in read_tsv(train)], axis=1)
    constant = float(np.abs(mels - np.median(mels, axis=1, keepdims=True)).mean())
    assert float(final["val_mel_l1"]) < 0.5 * constant
    assert float(final["val_length_error"]) < 0.10
    assert float(rows[-1]["val_loss"]) < float(rows[0]["val_loss"])
    plots = sorted(p.name for p in (tmp_path / "run" / "plots" / "step_000000150").iterdir())
    assert any(p.endswith("_alignment.png") for p in plots)
    assert any(p.endswith("_mel.png") for p in plots)
    assert (tmp_path / "run" / "curves.png").is_file()
    model, meta = load_acoustic(model_path)
    assert meta["step"] == 150 and meta["symbols"]["version"] == symbols.VERSION
    # the report names the best step by the metric the export chose it by
    page = tmp_path / "page.html"
    write_experiment_page("overfit", tmp_path / "run", page, tmp_path / "log.csv", "acoustic")
    assert f"{meta[BEST_METRIC]:.4f} at step {meta['step']};" in page.read_text()
    _evaluation_scores_the_fitted_model(model_path, train, tmp_path)


def _evaluation_scores_the_fitted_model(model_path, split, tmp_path):
    """The held-out evaluation: MCD and length error, and boundary error against labels.

    Labels written from the model's own alignment, on the recording's clock (the trimmed
    silence added back), must come out within a frame: a check of the whole time bookkeeping.
    """
    from vestnik.acoustic.data import text_ids
    from vestnik.acoustic.evaluate import FRAME_SECONDS, evaluate_acoustic
    from vestnik.acoustic.synth import _fold_blanks
    from vestnik.corpus import LABEL_DIR, WAV_DIR
    from vestnik.corpus.preprocess import CleanSettings, trim_offset
    from vestnik.speech_metrics import ipa_class

    plain = evaluate_acoustic(model_path, split, tmp_path / "eval")
    assert plain["utterances"] == 10 and plain["boundary_error_ms"] is None
    assert 0 < plain["mcd_db"] < 8 and plain["length_error"] < 0.10
    root = tmp_path / "labelled"
    (root / LABEL_DIR).mkdir(parents=True)
    model, _ = load_acoustic(model_path)
    source = split.parent.parent / "ruslan"
    (root / WAV_DIR).symlink_to(source / WAV_DIR)
    for row in read_tsv(split):
        ids, tokens = text_ids(row["text"], True)
        mel = torch.from_numpy(np.load(row["mel"])[None])
        with torch.inference_mode():
            out = model(torch.tensor([ids]), torch.tensor([len(ids)]), mel,
                        torch.tensor([mel.shape[2]]))
        frames = _fold_blanks(out["durations"][0].tolist(), True)
        offset = trim_offset(source / WAV_DIR / f"{row['id']}.wav", CleanSettings.from_config())
        lines, frame = ["#"], 0
        for token, count in zip(tokens.symbols, frames, strict=True):
            frame += count
            if token != symbols.SPACE:
                kind, base = ipa_class(token)
                name = "pau" if kind == "pause" else base
                lines.append(f"{offset + frame * FRAME_SECONDS:.5f} 125 {name}")
        (root / LABEL_DIR / f"{row['id']}.lab").write_text("\n".join(lines) + "\n")
    labelled = evaluate_acoustic(model_path, split, tmp_path / "eval2", corpus_root=root)
    assert labelled["boundary_pairs"] > 100
    assert labelled["boundary_error_ms"] < 1000 * FRAME_SECONDS


RESUME = {
    "model": {**TINY_MODEL, "decoder_layers": 2}, "batch_size": 5, "steps": 40,
    "warmup_steps": 5, "log_interval": 5, "val_interval": 40, "checkpoint_interval": 10,
    "plots": 0, "stats_items": 100, "device": "cpu",
}


@pytest.mark.slow
def test_resume_after_sigkill_gives_the_uninterrupted_weights(corpus, tmp_path, one_thread,
                                                              caplog):
    train, val = corpus / "train.tsv", corpus / "val.tsv"
    killed = tmp_path / "killed"
    script = (
        "import sys; from vestnik.acoustic.train import train_acoustic; "
        f"train_acoustic('resume', {RESUME!r}, {str(train)!r}, {str(val)!r}, {str(killed)!r}, "
        "threads=1)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = killed / "checkpoints" / "step_000000010.pt"
    deadline = time.time() + 120
    while not first.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (killed / "model.pt").exists()

    with caplog.at_level(logging.INFO, logger="vestnik.acoustic"):
        resumed = train_acoustic("resume", RESUME, train, val, killed, threads=1)
    assert "resumed at step" in caplog.text
    straight = train_acoustic("resume", RESUME, train, val, tmp_path / "straight", threads=1)

    a, b = load_state(resumed)["model"], load_state(straight)["model"]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[key], b[key]) for key in a)
    steps = [int(r["step"]) for r in CsvLog(killed / "train_log.csv", []).read() if r["loss"]]
    assert steps == list(range(5, 41, 5))


def test_compiled_training_keeps_the_plain_model_in_its_states(corpus, tmp_path):
    """torch.compile wraps only the training forward: checkpoints and the export read the
    plain model, whose keys carry no `_orig_mod.` prefix."""
    from vestnik.acoustic.config import resolve_experiment
    from vestnik.acoustic.train import AcousticTraining

    def recipe(compiled: bool) -> AcousticTraining:
        config = resolve_experiment("c", {"model": TINY_MODEL, "compile": compiled,
                                          "device": "cpu"})
        return AcousticTraining("c", config, torch.device("cpu"), corpus / "train.tsv",
                                corpus / "val.tsv", tmp_path)

    compiled, plain = recipe(True), recipe(False)
    assert isinstance(compiled.model_ranks, torch._dynamo.eval_frame.OptimizedModule)
    assert plain.model_ranks is plain.model
    assert list(compiled.state_dict()["model"]) == list(plain.state_dict()["model"])
    assert list(compiled.weights()["model"]) == list(plain.weights()["model"])
