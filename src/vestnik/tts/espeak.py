"""eSpeak NG speech synthesis through libespeak-ng (ctypes), with word and phoneme timings.

The library and its data come from the espeakng-loader wheel, so no system eSpeak is needed.
libespeak-ng keeps process-global state (one voice, one callback), so it is initialised once per
process and every call into it holds one lock. Its pitch flutter also runs on from call to call:
a fresh process reproduces its first synthesis exactly, while a text repeated within one process
may come out a few samples longer or shorter.
"""

from __future__ import annotations

import ctypes
import re
import threading

import espeakng_loader
import numpy as np

from vestnik.errors import VestnikError
from vestnik.text.normalize import (
    RUSSIAN_VOWELS,
    STRESS,
    normalize,
    split_sentences,
    stressed_vowel,
    strip_stress,
)
from vestnik.tts.speech import Speech

# speak_lib.h constants
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PHONEMES_IPA = 0x02
_PHONEME_INPUT = 0x100  # espeakPHONEMES: text may hold [[...]] phoneme input
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_EVENT_PHONEME = 7
_PARAM_RATE = 1
_PARAM_VOLUME = 2
_PARAM_PITCH = 3


class _EventId(ctypes.Union):
    _fields_ = [
        ("number", ctypes.c_int),
        ("name", ctypes.c_char_p),
        ("string", ctypes.c_char * 8),
    ]


class _Event(ctypes.Structure):
    """espeak_EVENT: `sample` is the event's position in samples from the start of the text."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


class _Engine:
    """The initialised library; use only while holding `_LOCK`."""

    def __init__(self) -> None:
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_TextToPhonemes.argtypes = [
            ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int
        ]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        data = espeakng_loader.get_data_path().encode()
        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, data, _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_DONT_EXIT
        )
        if rate <= 0:
            raise VestnikError(f"libespeak-ng failed to initialise with data at {data.decode()}")
        self.lib = lib
        self.sample_rate = rate
        self.voice = ""
        self.phoneme_input = False  # libespeak-ng turns it on for every call once a Synth asked
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, int, int, int, str]] = []
        # The callback object must outlive every synthesis, so the engine keeps it.
        self._callback = _SynthCallback(self._on_audio)
        lib.espeak_SetSynthCallback(self._callback)

    def _on_audio(self, wav, n_samples: int, events) -> int:
        if wav and n_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n_samples,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            event = events[i]
            if event.type in (_EVENT_WORD, _EVENT_PHONEME):
                symbol = event.id.string.decode("utf-8", "replace") if (
                    event.type == _EVENT_PHONEME) else ""
                self._events.append(
                    (event.type, event.sample, event.text_position, event.length, symbol)
                )
            i += 1
        return 0

    def set_voice(self, voice: str) -> None:
        if voice != self.voice:
            if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise VestnikError(f"eSpeak NG has no voice '{voice}'")
            self.voice = voice

    def synth(self, text: str) -> tuple[np.ndarray, list[tuple[int, int, int, int, str]]]:
        """int16 samples and raw (type, sample, text position, length, symbol) events."""
        self._chunks, self._events = [], []
        data = text.encode("utf-8")
        status = self.lib.espeak_Synth(
            data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8 | _PHONEME_INPUT, None, None
        )
        self.phoneme_input = True
        if status != 0:
            raise VestnikError(f"eSpeak NG could not synthesise {text[:60]!r} (error {status})")
        audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        return audio, self._events


_LOCK = threading.Lock()
_ENGINE: _Engine | None = None


def _engine() -> _Engine:
    """The process's engine, created on first use (call with `_LOCK` held)."""
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = _Engine()
    return _ENGINE


def _speakable(normalized: str) -> bool:
    return any(ch.isalpha() for ch in normalized)


def _piece_events(piece: str, raw: list[tuple[int, int, int, int, str]], n_samples: int,
                  rate: int, words: dict[str, str] | None = None) -> list[dict]:
    """Timed events of one synthesised piece (times in seconds from the piece's start).

    A phoneme ends where the next one starts (the last one at the end of the audio); eSpeak's
    separate palatalisation mark ';' is folded into the consonant before it ('r' + ';' -> 'r;').
    A word starts with its first phoneme and ends with its last one that is not a pause ('_'),
    so the gap after a word stays a gap. A word given as phoneme input (a key of `words`) is
    named by its value.
    """
    spans = [(m.start(), m.end(), (words or {}).get(m.group(0), ""))
             for m in _PHONEME_INPUT_RE.finditer(piece)]
    items: list[list] = []  # [kind, sample, text, symbol]
    for kind, sample, position, length, symbol in raw:
        sample = min(max(sample, 0), n_samples)
        if kind == _EVENT_WORD:
            text = piece[position - 1:position - 1 + length] if length > 0 else ""
            text = next((bare for start, end, bare in spans if start <= position - 1 < end), text)
            items.append(["word", sample, text, ""])
        elif symbol == ";" and items and items[-1][0] == "phoneme":
            items[-1][3] += symbol
        else:
            items.append(["phoneme", sample, "", symbol])
    phoneme_at = [i for i, item in enumerate(items) if item[0] == "phoneme"]
    ends = {i: (items[j][1] if j else n_samples)
            for i, j in zip(phoneme_at, phoneme_at[1:] + [0], strict=True)}
    events: list[dict] = [{"type": "sentence", "start": 0.0, "end": n_samples / rate,
                           "text": piece}]
    word: dict | None = None
    for i, (kind, sample, text, symbol) in enumerate(items):
        if kind == "word":
            word = {"type": "word", "start": sample / rate, "end": sample / rate, "text": text}
            events.append(word)
            continue
        end = max(ends[i], sample)
        if end == sample:
            continue
        events.append({"type": "phoneme", "start": sample / rate, "end": end / rate,
                       "symbol": symbol})
        if word is not None and not symbol.startswith("_"):
            if word["end"] == word["start"]:
                word["start"] = sample / rate  # the first phoneme of the word
            word["end"] = end / rate
    return [e for e in events if e["type"] != "word" or e["end"] > e["start"]]


def synthesize(
    text: str,
    *,
    voice: str,
    rate: int,
    pitch: int,
    volume: int,
    sentence_pause: float,
    max_chars: int,
) -> Speech:
    """Speak Russian text with eSpeak NG: normalise, split into sentences, join with pauses.

    The settings are the validated `tts.espeak` block (vestnik.config.engine_settings holds
    their defaults and ranges): `rate` in words per minute, `pitch` and `volume` as eSpeak's
    parameters, `sentence_pause` seconds of silence between pieces. Raises VestnikError when
    the text has nothing speakable.
    """
    normalized = normalize(text, stress=True)
    if not _speakable(normalized):
        raise VestnikError(f"nothing speakable in the text {text[:60]!r}")
    pieces = [p for p in split_sentences(normalized, max_chars) if _speakable(p)]
    audio: list[np.ndarray] = []
    events: list[dict] = []
    with _LOCK:
        engine = _engine()
        sr = engine.sample_rate
        engine.set_voice(voice)
        engine.lib.espeak_SetParameter(_PARAM_RATE, rate, 0)
        engine.lib.espeak_SetParameter(_PARAM_PITCH, pitch, 0)
        engine.lib.espeak_SetParameter(_PARAM_VOLUME, volume, 0)
        gap = np.zeros(int(round(sentence_pause * sr)), np.int16)
        offset = 0
        for k, piece in enumerate(pieces):
            if k:
                audio.append(gap)
                offset += len(gap)
            spoken, words = _with_stress(engine, piece)
            samples, raw = engine.synth(spoken)
            for event in _piece_events(spoken, raw, len(samples), sr, words):
                if event["type"] == "sentence":
                    event["text"] = strip_stress(piece)
                event["start"] = round(event["start"] + offset / sr, 6)
                event["end"] = round(event["end"] + offset / sr, 6)
                events.append(event)
            audio.append(samples)
            offset += len(samples)
    samples = np.concatenate(audio).astype(np.float32) / 32768.0
    if not np.any(samples):
        raise VestnikError(f"eSpeak NG produced silence for {text[:60]!r}")
    return Speech(samples, sr, events, strip_stress(normalized), "espeak")


_CLAUSE_PUNCTUATION = ",.;:!?…"
_LANGUAGE_SWITCH_RE = re.compile(r"\([a-z]{2,3}(?:-[a-z0-9]+)*\)")
_WORD_RE = re.compile(r"(?:[^\W\d_]|\u0301)+")
_PHONEME_INPUT_RE = re.compile(r"\[\[.*?(?:\]\]|$)")


def _phonemes(engine: _Engine, text: str, mode: int, punctuation: bool) -> str:
    """Phonemes of `text` clause by clause (call with `_LOCK` held and the voice set)."""
    data = text.encode("utf-8")
    buffer = ctypes.create_string_buffer(data)
    base = ctypes.addressof(buffer)
    pointer = ctypes.c_void_p(base)
    clauses: list[str] = []
    while pointer.value:
        start = pointer.value - base
        result = engine.lib.espeak_TextToPhonemes(ctypes.byref(pointer), _CHARS_UTF8, mode)
        phonemes = _LANGUAGE_SWITCH_RE.sub("", (result or b"").decode("utf-8", "replace"))
        phonemes = phonemes.strip()
        # eSpeak reads a character past the clause end, so the mark is the last one consumed.
        stop = (pointer.value - base) if pointer.value else len(data)
        consumed = _PHONEME_INPUT_RE.sub("", data[start:stop].decode("utf-8", "replace"))
        marks = [ch for ch in consumed if ch in _CLAUSE_PUNCTUATION]
        mark = marks[-1] if punctuation and marks else ""
        if phonemes:
            clauses.append(phonemes + mark)
    return " ".join(clauses)


# eSpeak's Russian vowel phonemes (mnemonics) and the ones a vowel letter takes when stressed
# or, having lost its stress to a marked vowel, unstressed.
_VOWEL_PHONEMES = frozenset(
    ("a", "a#", "A", "V", "V#", "@", "e", "E", "E#", "E2", "i", "I", "I^", "o", "8", "u", 'u"',
     "u#", "y", "ja", "ju")
)
_STRESSED = {"а": "A", "я": "A", "о": "o", "ё": "8", "е": "e", "э": "E", "и": "i", "ы": "y",
             "у": "u", "ю": "u"}
_UNSTRESSED = {"а": "V", "я": "V", "о": "V", "ё": "V", "е": "i", "э": "E#", "и": "i", "ы": "y",
               "у": "u", "ю": "u"}
_STRESS_MARKS = "',"
_SEPARATOR = "|"


def _stressed_word(engine: _Engine, word: str) -> str:
    """A stress-marked word as eSpeak phoneme input ('[[...]]') that stresses the marked vowel.

    eSpeak's own phonemes of the bare word are kept; only the vowel eSpeak stressed and the
    marked one change quality. The bare word comes back when eSpeak already stresses the mark.
    """
    bare = strip_stress(word)
    marked = stressed_vowel(word)
    raw = _phonemes(engine, bare, ord(_SEPARATOR) << 8, punctuation=False)
    tokens = raw.split(_SEPARATOR)
    if marked is None or not raw or " " in raw:
        return bare
    vowels = [i for i, token in enumerate(tokens) if token.lstrip(_STRESS_MARKS) in _VOWEL_PHONEMES]
    letters = [ch.lower() for ch in bare if ch in RUSSIAN_VOWELS]
    if marked >= len(vowels):
        return bare
    if [j for j, i in enumerate(vowels) if tokens[i].startswith("'")] == [marked]:
        return bare
    aligned = len(vowels) == len(letters)
    for j, i in enumerate(vowels):
        name = tokens[i].lstrip(_STRESS_MARKS)
        if j == marked:
            quality = _STRESSED[letters[j]] if aligned and name not in ("ja", "ju") else name
            tokens[i] = "'" + quality
        elif tokens[i].startswith("'"):
            reduced = _UNSTRESSED[letters[j]] if aligned else name
            if reduced == "V" and letters[j] == "а" and j == len(vowels) - 1:
                reduced = "a#"
            tokens[i] = reduced
    return "[[" + "".join(tokens) + "]]"


def _with_stress(engine: _Engine, text: str) -> tuple[str, dict[str, str]]:
    """`text` with each stress-marked word as phoneme input, and {phoneme input: bare word}.

    Call with `_LOCK` held and the voice set.
    """
    if STRESS not in text:
        return text, {}
    if not engine.phoneme_input:
        engine.synth(" ")  # libespeak-ng reads [[...]] only once a Synth call has asked for it
    spoken: dict[str, str] = {}

    def replace(m: re.Match[str]) -> str:
        word = m.group(0)
        if STRESS not in word:
            return word
        phonemes = _stressed_word(engine, word)
        spoken[phonemes] = strip_stress(word)
        return phonemes

    return strip_stress(_WORD_RE.sub(replace, text)), spoken


def text_to_phonemes(text: str, *, voice: str = "ru", ipa: bool = True,
                     punctuation: bool = True) -> str:
    """Phonemes of `text` (IPA with stress marks ˈ ˌ, or eSpeak mnemonics), clause by clause.

    The text is read as given: pass it through `normalize` first for numbers and abbreviations.
    A vowel marked with U+0301 (as `normalize(..., stress=True)` leaves it) is stressed.
    With `punctuation`, each clause keeps the mark that ended it, so a model can see pauses.
    eSpeak's language-switch tags such as '(en)' around foreign words are removed.
    """
    with _LOCK:
        engine = _engine()
        engine.set_voice(voice)
        spoken, _ = _with_stress(engine, text)
        return _phonemes(engine, spoken, _PHONEMES_IPA if ipa else 0, punctuation)
