"""Re-voicing a recording with its transcript: pieces cut in pauses, the transcript given to
them, alignment, refused inputs, and one workflow run with tiny trained models."""

import json

import numpy as np
import pytest

from vestnik import media
from vestnik.config import check_job, job_input, job_transcript
from vestnik.errors import VestnikError
from vestnik.revoice import (
    FRAME_SECONDS,
    HOP,
    SAMPLE_RATE,
    Transcript,
    assign_symbols,
    check_fit,
    cut_points,
    pause_gain,
    prepare_recording,
    revoice_settings,
    silent_runs,
    transcript_tokens,
)
from vestnik.speech_metrics import envelope_correlation

from .workflow_helpers import base_config, run_workflow

FPS = 25
TEXT = "Сегодня хорошая погода. Мы пойдём гулять в парк, а потом домой."
OTHER = "Корабль вышел из порта рано утром и взял курс на север."
MARGIN = 3.0
"""How far below the matching pair's worst fit the mismatch test's threshold lies."""


def _mask(pattern: list[tuple[int, bool]]) -> np.ndarray:
    """A per-frame speech mask from (frames, speaking) runs."""
    return np.concatenate([np.full(n, on) for n, on in pattern])


# --- pieces ------------------------------------------------------------------------------------

def test_cuts_fall_in_the_middle_of_the_longest_pause_near_each_piece_end():
    speech = _mask([(20, False), (300, True), (10, False), (60, True), (40, False),
                    (400, True), (30, False), (300, True), (20, False)])
    cuts = cut_points(speech, piece_frames=400, min_pause_frames=13)
    # pauses of 10 frames are too short; the 40-frame pause (frames 390-430) and the 30-frame
    # one (830-860) are each the only pause near a piece end; the edges never count
    assert cuts == [410, 845]
    assert all(not speech[c] for c in cuts)


def test_a_recording_without_pauses_or_short_stays_one_piece():
    assert cut_points(np.ones(5000, bool), 400, 13) == []
    short = _mask([(100, True), (40, False), (100, True)])
    assert cut_points(short, 400, 13) == []


def test_symbols_go_to_the_piece_whose_pause_is_nearest_and_words_stay_whole():
    names = ["a", "b", " ", "c", "d", ",", "e", " ", "f", "."]
    # frames along an alignment: each symbol 10 frames, the "," a pause of 40
    lengths = [10, 10, 10, 10, 10, 40, 10, 10, 10, 10]
    end = np.cumsum(lengths)
    first = end - lengths
    # a cut in the "," pause (frames 50-90) starts the next piece at "e" (index 6); a cut in
    # the word gap of frames 20-30 at "c" (index 3)
    assert assign_symbols([70], names, first, end) == [(70, 6)]
    assert assign_symbols([25, 70], names, first, end) == [(25, 3), (70, 6)]
    # two cuts that fall to the same boundary keep the first
    assert assign_symbols([68, 72], names, first, end) == [(68, 6)]
    assert assign_symbols([135], names, first, end) == [(135, 8)]


def test_transcript_is_tokenised_sentence_by_sentence_and_names_words_by_place():
    script = transcript_tokens(TEXT)
    assert len(script.sentences) == 2 and script.starts[0] == 0
    lo, hi = script.span(1)
    assert script.symbols[hi - 1] == "." and script.symbols[lo - 1] == "."
    assert script.words_near(lo, hi - 1) == script.sentences[1]
    assert script.words_near(0, 2).split()[0] == "Сегодня"


# --- alignment ---------------------------------------------------------------------------------

def test_banded_alignment_finds_the_exact_path_at_a_fraction_of_the_cost():
    from vestnik.acoustic.align import align_piece, banded_alignment

    rng = np.random.default_rng(0)
    mu = rng.normal(0, 1, (400, 80)).astype(np.float32)
    durations = rng.integers(1, 9, 400)
    frames = np.repeat(mu, durations, axis=0) + rng.normal(0, 1.5, (durations.sum(), 80))
    frames = frames.astype(np.float32)
    banded = banded_alignment(mu, frames, band=48)
    exact = align_piece(mu, frames)
    assert np.array_equal(banded.durations(400), durations)
    assert np.array_equal(exact.durations(400), durations)
    assert banded.fit.max() <= 0 and banded.fit.mean() > -1
    # other words in the same frames: no path fits, and the fit falls far below
    shuffled = banded_alignment(mu[rng.permutation(400)], frames, band=48)
    assert shuffled is None or shuffled.fit.mean() < 10 * banded.fit.mean() - 5
    assert banded_alignment(mu, frames[:300], band=48) is None  # more tokens than frames


def test_a_stretch_that_does_not_fit_is_named_with_its_time_and_words():
    settings = revoice_settings({"match_window": 1.0, "min_match": -4.0})
    window = round(1.0 / FRAME_SECONDS)
    fit = np.full(10 * window, -1.0)
    fit[4 * window: 5 * window] = -9.0
    speech = np.ones_like(fit, bool)
    words = []

    def words_at(lo, hi):
        words.append((lo, hi))
        return "тут не то"

    with pytest.raises(VestnikError) as error:
        check_fit("long", fit, speech, settings, 100, words_at)
    message = str(error.value)
    assert "job 'long'" in message and "does not match the recording at 0:0" in message
    assert "«тут не то»" in message and "revoice.min_match (-4.0)" in message
    lo, hi = words[0]
    assert 3 * window <= lo <= 4 * window and hi - lo == window
    ok = check_fit("long", np.full(10 * window, -1.0), speech, settings, 0, words_at)
    assert ok["worst"] == -1.0


# --- refused inputs ----------------------------------------------------------------------------

def _config(**entry):
    return base_config({"job": entry})


def test_a_recording_with_a_transcript_is_a_neural_re_voicing_job(tmp_path):
    neural = {"engine": "neural"}
    config = _config(audio="rec.wav", text="Привет.", tts=neural)
    assert check_job(config, "job")["revoice"] == revoice_settings({})
    assert job_input(config, "job") == ("audio", "rec.wav")
    assert job_transcript(config, "job") == ("text", "Привет.")
    with pytest.raises(VestnikError, match="job 'job'.*needs tts.engine neural"):
        check_job(_config(audio="rec.wav", text_file="t.txt"), "job")
    with pytest.raises(VestnikError, match="job 'job'.*needs its transcript.*no speech "
                                           "recogniser"):
        check_job(_config(audio="rec.wav", tts=neural), "job")
    with pytest.raises(VestnikError, match="does not fit the schema"):
        check_job(_config(text="a", text_file="t.txt"), "job")
    assert job_transcript(_config(text="Привет."), "job") is None


def _recording(path, samples):
    media.write_wav(path, samples, SAMPLE_RATE)
    return str(path)


def _speech_like(seconds=3.0, seed=0):
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    envelope = (np.sin(np.arange(n) / SAMPLE_RATE * 2 * np.pi * 1.5) > -0.2).astype(np.float32)
    return (0.3 * rng.normal(size=n) * envelope).astype(np.float32)


@pytest.mark.parametrize(("samples", "message"), [
    (np.zeros(SAMPLE_RATE, np.float32), "the recording is silent"),
    (0.3 * np.sin(np.arange(3 * SAMPLE_RATE) / 20).astype(np.float32), "no speech"),
])
def test_a_recording_without_speech_is_refused_before_any_model_loads(tmp_path, samples,
                                                                     message):
    from vestnik.steps import plan_revoice_job

    config = _config(audio=_recording(tmp_path / "rec.wav", samples), text=TEXT,
                     tts={"engine": "neural", "neural": {"acoustic": "missing/model.pt",
                                                         "vocoder": "missing/gen.pt"}})
    settings = check_job(config, "job")
    with pytest.raises(VestnikError, match=f"job 'job'.*{message}"):
        plan_revoice_job("job", settings, job_input(config, "job")[1],
                         job_transcript(config, "job"), tmp_path / "plan.json",
                         tmp_path / "recording.wav")
    with pytest.raises(VestnikError, match="silent|no speech"):
        prepare_recording(samples, "job")


@pytest.mark.parametrize("text", ["", "   ", "... !!!"])
def test_an_empty_transcript_is_refused_before_any_model_loads(tmp_path, text):
    from vestnik.steps import plan_revoice_job

    transcript = tmp_path / "t.txt"
    transcript.write_text(text, encoding="utf-8")
    config = _config(audio=_recording(tmp_path / "rec.wav", _speech_like()),
                     text_file=str(transcript),
                     tts={"engine": "neural", "neural": {"acoustic": "missing/model.pt",
                                                         "vocoder": "missing/gen.pt"}})
    with pytest.raises(VestnikError, match="job 'job'.*the transcript (is empty|has nothing)"):
        plan_revoice_job("job", check_job(config, "job"), job_input(config, "job")[1],
                         job_transcript(config, "job"), tmp_path / "plan.json",
                         tmp_path / "recording.wav")
    assert not (tmp_path / "plan.json").exists()


def test_pauses_are_silenced_and_speech_kept():
    speech = _mask([(30, True), (40, False), (30, True)])
    gain = pause_gain(speech, 13, len(speech) * HOP)
    assert gain[: 30 * HOP].min() == 1.0 and gain[-30 * HOP:].min() == 1.0
    assert gain[35 * HOP: 65 * HOP].max() == 0.0
    assert silent_runs(speech, 13) == [(30, 70)]


def test_envelope_correlation_follows_loudness_not_content():
    speech = _speech_like(4.0, 1)
    other_voice = _speech_like(4.0, 2)  # other samples, same loud and quiet stretches
    assert envelope_correlation(speech, speech, SAMPLE_RATE) == pytest.approx(1.0)
    assert envelope_correlation(speech, other_voice, SAMPLE_RATE) > 0.9
    shifted = np.roll(other_voice, SAMPLE_RATE // 3)  # loud where the other is quiet
    assert envelope_correlation(speech, shifted, SAMPLE_RATE) < 0.3


def test_transcript_words_near_spans_sentences():
    script = Transcript(["раз два три", "четыре пять"], list("abcdefgh") + ["."], [0, 5])
    assert script.words_near(0, 8) == "раз два три четыре пять"


# --- the workflow, with tiny trained models ----------------------------------------------------

@pytest.fixture(scope="module")
def revoiced(tmp_path_factory):
    from vestnik.tts import synthesize

    from .test_neural_tts import micro_config

    workdir = tmp_path_factory.mktemp("revoice")
    config = micro_config(workdir)
    recording = workdir / "recording.wav"
    spoken = synthesize(TEXT, {"engine": "espeak"})
    # silence around the speech, and an odd length: the re-voiced speech must keep both
    padded = np.concatenate([np.zeros(5000, np.float32), spoken.samples,
                             np.zeros(7777, np.float32)])
    media.write_wav(recording, padded, SAMPLE_RATE)
    transcript = workdir / "transcript.txt"
    transcript.write_text(TEXT, encoding="utf-8")
    neural = {"engine": "neural", "neural": {"acoustic": "micro", "vocoder": "micro",
                                             "device": "cpu"}}
    # a 60-step model fits even matching speech loosely: the threshold is set from the
    # matching pair's own fit (as docs/revoice.md calibrates the default on real pairs)
    config["jobs"] = {
        "revoiced": {"audio": str(recording), "text_file": str(transcript), "tts": neural,
                     "revoice": {"piece_seconds": 2.0, "min_match": -1e9},
                     "chunks": {"workers": 1}},
        "no_transcript": {"audio": str(recording), "tts": neural},
    }
    result = run_workflow(workdir, config, *(f"results/jobs/{job}/final.mp4"
                                             for job in config["jobs"]))
    plan = workdir / "results" / "jobs" / "revoiced" / "revoice" / "plan.json"
    matched = json.loads(plan.read_text(encoding="utf-8"))["fit"]["worst"] if plan.is_file() \
        else 0.0
    config["jobs"]["mismatch"] = {"audio": str(recording), "text": OTHER, "tts": neural,
                                  "revoice": {"min_match": matched - MARGIN}}
    mismatch = run_workflow(workdir, config, "results/jobs/mismatch/speech.wav")
    return workdir, result, padded, mismatch


@pytest.mark.slow
def test_a_re_voiced_recording_keeps_its_length_and_loudness_in_pieces(revoiced):
    workdir, result, recording, _ = revoiced
    job = workdir / "results" / "jobs" / "revoiced"
    assert (job / "final.mp4").is_file(), result.stderr[-3000:]
    plan = json.loads((job / "revoice" / "plan.json").read_text(encoding="utf-8"))
    assert len(plan["pieces"]) >= 2
    assert all((job / "revoice" / "pieces" / f"{p['piece']}.wav").is_file()
               for p in plan["pieces"])
    new = media.read_audio(job / "speech.wav", SAMPLE_RATE)
    assert len(new) == len(recording)  # exactly; within one video frame is the promise
    video = media.probe(job / "final.mp4")
    assert abs(video["duration"] - len(recording) / SAMPLE_RATE) <= 1 / FPS
    assert envelope_correlation(recording, new, SAMPLE_RATE, FPS) >= 0.5
    speech = json.loads((job / "speech.json").read_text(encoding="utf-8"))
    phonemes = [e for e in speech["events"] if e["type"] == "phoneme"]
    sentences = [e for e in speech["events"] if e["type"] == "sentence"]
    assert speech["engine"] == "neural" and len(sentences) == 2
    assert phonemes[0]["start"] >= 5000 / SAMPLE_RATE - 0.1  # the leading silence is kept
    assert max(e["end"] for e in phonemes) <= speech["duration"]
    # the pieces' new speech is silent where they join
    for piece in plan["pieces"][1:]:
        edge = piece["start"]
        assert np.abs(new[edge - HOP: edge + HOP]).max() < 1e-3


@pytest.mark.slow
def test_a_transcript_of_other_words_is_refused_naming_the_stretch(revoiced):
    workdir, _, _, result = revoiced
    assert not (workdir / "results/jobs/mismatch/speech.wav").exists()
    error = json.loads((workdir / "results/jobs/mismatch/revoice/plan.error.json").read_text())
    assert "does not match the recording" in error["message"]
    assert "job 'mismatch'" in result.stderr and "does not match the recording" in result.stderr


@pytest.mark.slow
def test_a_recording_without_transcript_and_the_neural_voice_says_what_is_needed(revoiced):
    workdir, result, _, _ = revoiced
    assert not (workdir / "results/jobs/no_transcript/speech.wav").exists()
    assert "job 'no_transcript'" in result.stderr and "needs its transcript" in result.stderr


@pytest.mark.slow
def test_the_cli_re_voices_as_the_workflow_does(revoiced, tmp_path):
    import yaml

    from vestnik.cli import main

    workdir, result, recording, _ = revoiced
    job = workdir / "results" / "jobs" / "revoiced"
    assert (job / "speech.wav").is_file(), result.stderr[-3000:]
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"jobs": {}, "defaults": {
        "revoice": {"piece_seconds": 2.0, "min_match": -1e9}}}), encoding="utf-8")
    out = tmp_path / "new.wav"
    models = workdir / "results" / "models"
    code = main(["revoice", str(workdir / "recording.wav"), "--text-file",
                 str(workdir / "transcript.txt"), "--out", str(out), "--config", str(config),
                 "--acoustic", str(models / "acoustic/micro/model.pt"),
                 "--vocoder", str(models / "vocoder/micro/generator.pt")])
    assert code == 0
    ours = media.read_audio(out, SAMPLE_RATE)
    assert np.array_equal(ours, media.read_audio(job / "speech.wav", SAMPLE_RATE))
    events = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))["events"]
    assert events == json.loads((job / "speech.json").read_text(encoding="utf-8"))["events"]
    assert main(["revoice", str(workdir / "recording.wav"), "--text", " ", "--out",
                 str(tmp_path / "x.wav"), "--config", str(config)]) == 1
