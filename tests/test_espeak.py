"""eSpeak NG through ctypes: audio, timings, parameters, phonemes, and speech files."""

import json
import threading

import numpy as np
import pytest

from vestnik.config import engine_settings
from vestnik.errors import VestnikError
from vestnik.tts import espeak
from vestnik.tts.speech import Speech

from .workflow_helpers import CASPIAN


def speak(text: str, **settings) -> Speech:
    """eSpeak with `settings` over the schema's defaults, checked as a job's are."""
    return espeak.synthesize(text, **engine_settings("tts", "espeak", settings))


SENTENCE = "Протяжённость кабеля составляет 380 километров."


@pytest.fixture(scope="module")
def sentence() -> Speech:
    return speak(SENTENCE)


def _of(speech: Speech, kind: str) -> list[dict]:
    return [e for e in speech.events if e["type"] == kind]


def test_native_sample_rate_is_22050(sentence):
    assert sentence.sample_rate == 22050  # libespeak-ng's own rate, kept without resampling


def test_sentence_gives_audible_speech_of_plausible_length(sentence):
    assert sentence.sample_rate == 22050
    assert sentence.samples.dtype == np.float32
    assert 0.5 < sentence.duration < 10
    assert np.sqrt(np.mean(sentence.samples**2)) > 0.01
    assert np.abs(sentence.samples).max() <= 1.0
    assert sentence.engine == "espeak"
    assert sentence.text == "Протяжённость кабеля составляет триста восемьдесят километров."


def test_word_and_phoneme_events_are_ordered_and_inside_the_audio(sentence):
    words, phonemes = _of(sentence, "word"), _of(sentence, "phoneme")
    assert [w["text"] for w in words] == sentence.text.rstrip(".").split()
    assert len(phonemes) > 3 * len(words)
    for series in (words, phonemes):
        starts = [e["start"] for e in series]
        assert starts == sorted(starts)
        for e in series:
            assert 0 <= e["start"] < e["end"] <= sentence.duration + 1e-6
    for a, b in zip(phonemes, phonemes[1:], strict=False):
        assert a["end"] <= b["start"] + 1e-6
    assert all(p["symbol"] for p in phonemes)
    assert any(p["symbol"].startswith("'") for p in phonemes)  # a stressed vowel
    starts = [e["start"] for e in sentence.events]
    assert starts == sorted(starts)


def test_rate_changes_duration(sentence):
    fast = speak(SENTENCE, rate=320)
    assert fast.duration < 0.75 * sentence.duration


def test_caspian_text_is_several_sentences_with_pauses():
    speech = speak(CASPIAN, sentence_pause=0.3)
    sentences = _of(speech, "sentence")
    assert len(sentences) == 5
    assert 15 < speech.duration < 60
    rate = speech.sample_rate
    for a, b in zip(sentences, sentences[1:], strict=False):
        assert b["start"] - a["end"] == pytest.approx(0.3, abs=1e-4)
        gap = speech.samples[int(a["end"] * rate) + 1:int(b["start"] * rate) - 1]
        assert not np.any(gap)
    assert speech.events[-1]["end"] <= speech.duration + 1e-6
    assert not any(ch.isdigit() for ch in speech.text)


def test_text_to_phonemes_gives_ipa_with_stress():
    ipa = espeak.text_to_phonemes("молоко")
    assert "ˈ" in ipa and "m" in ipa and "k" in ipa
    assert espeak.text_to_phonemes("Привет, мир!").endswith("!")
    assert "," in espeak.text_to_phonemes("Привет, мир!")
    assert "'" in espeak.text_to_phonemes("молоко", ipa=False)
    assert "(en)" not in espeak.text_to_phonemes("Apple")


@pytest.mark.parametrize("text", ["", "   ", " ... — !? «» ", "\x00\x07"])
def test_unspeakable_text_is_an_error(text):
    with pytest.raises(VestnikError, match="nothing speakable"):
        speak(text)


@pytest.mark.parametrize(("option", "value"), [("rate", 10), ("pitch", 101), ("volume", -1)])
def test_out_of_range_parameters_are_errors(option, value):
    with pytest.raises(VestnikError, match=option):
        speak("Привет.", **{option: value})


def test_unknown_voice_is_an_error():
    with pytest.raises(VestnikError, match="voice"):
        speak("Привет.", voice="no-such-voice")


def test_threads_share_the_library_safely(sentence):
    results: list[Speech] = []

    def run() -> None:
        results.append(speak(SENTENCE))

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 3
    # eSpeak's pitch flutter runs on across calls, so repeats differ by a few samples only.
    expected = [w["text"] for w in _of(sentence, "word")]
    for r in results:
        assert r.duration == pytest.approx(sentence.duration, rel=0.02)
        assert [w["text"] for w in _of(r, "word")] == expected
        assert len(_of(r, "phoneme")) == len(_of(sentence, "phoneme"))


def test_speech_save_and_load_round_trip(sentence, tmp_path):
    wav, meta = tmp_path / "speech.wav", tmp_path / "speech.json"
    sentence.save(wav, meta)
    data = json.loads(meta.read_text(encoding="utf-8"))
    assert data["sample_rate"] == 22050
    assert data["duration"] == pytest.approx(sentence.duration, abs=1e-5)
    assert data["engine"] == "espeak"
    assert {e["type"] for e in data["events"]} == {"sentence", "word", "phoneme"}
    loaded = Speech.load(wav, meta)
    assert loaded.sample_rate == 22050
    assert loaded.events == sentence.events
    assert loaded.text == sentence.text
    np.testing.assert_allclose(loaded.samples, sentence.samples, atol=1 / 32768 + 1e-7)


def _stressed_vowel_index(ipa: str) -> list[int]:
    from vestnik.acoustic.symbols import VOWELS, tokenize

    vowels = [s for s in tokenize(ipa).symbols if s.lstrip("ˈˌ") in VOWELS]
    return [i for i, s in enumerate(vowels) if s.startswith("ˈ")]


def test_every_marked_word_of_the_festvox_transcripts_is_stressed_where_marked(festvox_package):
    """Each '+' of the real corpus's transcripts moves eSpeak's stress onto the marked vowel."""
    from vestnik.corpus.festvox import read_transcripts, voice_dir
    from vestnik.text.normalize import marked_words, normalize, stressed_vowel

    lines = read_transcripts(voice_dir(festvox_package) / "etc" / "txt.done.data")
    words = [w for _, text in lines if "+" in text
             for w in marked_words(normalize(text, stress=True))]
    assert len(words) >= 150
    wrong = [(w, espeak.text_to_phonemes(w)) for w in words
             if _stressed_vowel_index(espeak.text_to_phonemes(w)) != [stressed_vowel(w)]]
    assert not wrong
    moved = [w for w in words if _stressed_vowel_index(espeak.text_to_phonemes(
        w.replace("\u0301", ""))) != [stressed_vowel(w)]]
    assert moved  # eSpeak alone stresses some of them elsewhere ("волос", "замок")


def test_stress_marks_set_stress_in_synthesis_and_are_not_read():
    """'+' and U+0301 stress the marked vowel of the spoken word; nothing says 'плюс'."""
    for text, word, vowel in (("Старый з+амок.", "замок", "'A"),
                              ("Прядь вол+ос.", "волос", "'o"),
                              ("Старый зам\u043e\u0301к.", "замок", "'o")):
        speech = speak(text)
        assert "плюс" not in speech.text and "\u0301" not in speech.text
        spoken = next(e for e in _of(speech, "word") if e["text"] == word)
        phonemes = [p["symbol"] for p in _of(speech, "phoneme")
                    if spoken["start"] <= p["start"] < spoken["end"]]
        stressed = [i for i, p in enumerate(phonemes) if p.startswith("'")]
        assert len(stressed) == 1 and phonemes[stressed[0]] == vowel, phonemes
        assert "p" not in phonemes[:1] and "pl'jus" not in "".join(phonemes)
    ipa = espeak.text_to_phonemes("з\u0430\u0301мок, замо\u0301к.")
    assert ipa == "zˈɑmʌk, zamˈok."
