"""The acoustic model's input alphabet: eSpeak NG's Russian IPA, tokenised into a fixed table.

A token is one phoneme: a vowel carries its stress mark ("ˈa", "ˌo", "a"), a consonant carries
its palatalisation ("tʲ"). Clause punctuation stays as pause tokens and word gaps as " ".
The table is versioned: a model trained on one version is refused by code with another, since
indices would otherwise mean other phonemes. Symbols that eSpeak produces for foreign words
(English "ɹ", "w", "θ" ...) are folded onto the nearest Russian phoneme; anything still unknown
is dropped, with one warning listing what was dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

log = logging.getLogger("vestnik.acoustic")

VERSION = "ru-ipa-1"

PAD = "<pad>"
BLANK = "<blank>"
SPACE = " "
PUNCTUATION = (",", ".", "!", "?", ":", ";", "…")
"""Clause marks kept by `vestnik.tts.espeak.text_to_phonemes`; each is a pause token."""
STRESS = ("ˈ", "ˌ")
PALATAL = "ʲ"
VOWELS = ("a", "ɑ", "e", "ɛ", "i", "ɪ", "o", "ɵ", "u", "y", "ʌ", "ə")
PAIRED_CONSONANTS = (
    "p", "b", "t", "d", "k", "ɡ", "f", "v", "s", "z", "ʃ", "ʒ", "x", "ɣ", "m", "n", "ɭ", "l", "r",
)
"""Consonants that also occur palatalised ("tʲ")."""
SINGLE_CONSONANTS = ("j", "ɕ", "ʑ")

FOLD = {
    "g": "ɡ", "h": "x", "ɦ": "ɣ", "ɹ": "r", "ɾ": "r", "ʁ": "r", "w": "v", "ʋ": "v",
    "θ": "s", "ð": "z", "ŋ": "n", "ɲ": "nʲ", "ʎ": "lʲ", "ɫ": "ɭ", "c": "kʲ", "ɟ": "ɡʲ",
    "ç": "xʲ", "q": "k", "ʔ": "", "ɐ": "ʌ", "ɔ": "o", "ɒ": "o", "ɜ": "ɵ", "ø": "ɵ",
    "œ": "ɵ", "æ": "ɛ", "ʊ": "u", "ʉ": "u", "ɨ": "y", "ɯ": "y", "ɘ": "ə", "ɤ": "ʌ",
    "ɚ": "ər", "ɝ": "ɵr", "ʏ": "y", "ɶ": "a", "ʍ": "v",
}  # fmt: skip
"""Foreign or rare IPA symbols and the Russian phoneme(s) eSpeak's Russian voice would use."""
SILENT = frozenset("ːˑ\"^'-‿͜͡")
"""Marks that carry nothing the model uses (length, ties, eSpeak's internal markers)."""


def _build_table() -> tuple[str, ...]:
    table = [PAD, BLANK, SPACE, *PUNCTUATION]
    for vowel in VOWELS:
        table += [vowel, STRESS[0] + vowel, STRESS[1] + vowel]
    for consonant in PAIRED_CONSONANTS:
        table += [consonant, consonant + PALATAL]
    table += list(SINGLE_CONSONANTS)
    return tuple(table)


SYMBOLS = _build_table()
"""Token strings; a token's index in this tuple is its id. Never reorder: bump VERSION."""
SYMBOL_ID = {symbol: index for index, symbol in enumerate(SYMBOLS)}
PAD_ID = SYMBOL_ID[PAD]
BLANK_ID = SYMBOL_ID[BLANK]
SPACE_ID = SYMBOL_ID[SPACE]
_VOWEL_SET = frozenset(VOWELS)
_CONSONANT_SET = frozenset(PAIRED_CONSONANTS + SINGLE_CONSONANTS)


def table_record() -> dict:
    """What a checkpoint stores to prove which table its embedding rows belong to."""
    return {"version": VERSION, "symbols": list(SYMBOLS)}


def is_pause(symbol: str) -> bool:
    """Punctuation tokens: silence of a clause or sentence boundary."""
    return symbol in PUNCTUATION


def is_phoneme(symbol: str) -> bool:
    """Tokens that are sounds (neither padding, blank, word gap nor pause)."""
    return symbol not in (PAD, BLANK, SPACE) and not is_pause(symbol)


@dataclass
class Tokens:
    """Token strings of one text plus the symbols that had to be dropped."""

    symbols: list[str]
    unknown: set[str]

    @property
    def ids(self) -> list[int]:
        return [SYMBOL_ID[symbol] for symbol in self.symbols]


def _expand(phonemes: str) -> Iterable[str]:
    """Characters with foreign symbols replaced by their Russian counterparts."""
    for char in phonemes:
        yield from FOLD.get(char, char)


def tokenize(phonemes: str) -> Tokens:
    """Split an eSpeak IPA string (as `text_to_phonemes` returns it) into table tokens.

    A stress mark waits for the next vowel of its word; "ʲ" joins the consonant before it.
    Word gaps next to pauses, and repeated gaps, collapse.
    """
    symbols: list[str] = []
    unknown: set[str] = set()
    stress = ""
    for char in _expand(phonemes):
        if char in STRESS:
            stress = char
        elif char == PALATAL:
            if symbols and symbols[-1] in PAIRED_CONSONANTS:
                symbols[-1] += PALATAL
        elif char in _VOWEL_SET:
            symbols.append(stress + char)
            stress = ""
        elif char in _CONSONANT_SET:
            symbols.append(char)
        elif char.isspace():
            stress = ""
            if symbols and symbols[-1] != SPACE and not is_pause(symbols[-1]):
                symbols.append(SPACE)
        elif char in PUNCTUATION:
            stress = ""
            if symbols and symbols[-1] == SPACE:
                symbols.pop()
            if symbols and not is_pause(symbols[-1]):
                symbols.append(char)
        elif char in SILENT or "\u0300" <= char <= "\u036f":
            continue
        else:
            unknown.add(char)
    while symbols and (symbols[-1] == SPACE):
        symbols.pop()
    return Tokens(symbols, unknown)


def warn_unknown(unknown: set[str], where: str = "") -> None:
    """One warning listing every dropped symbol (nothing when there are none)."""
    if unknown:
        listed = " ".join(sorted(f"{s!r} (U+{ord(s):04X})" for s in unknown))
        suffix = f" in {where}" if where else ""
        log.warning("dropped %d phoneme symbol(s) outside table %s%s: %s",
                    len(unknown), VERSION, suffix, listed)


def text_tokens(text: str, voice: str = "ru") -> Tokens:
    """Normalised Russian text -> tokens, through libespeak-ng's text-to-phonemes (IPA)."""
    from vestnik.tts.espeak import text_to_phonemes

    return tokenize(text_to_phonemes(text, voice=voice, ipa=True, punctuation=True))


def intersperse(ids: list[int], blank: int = BLANK_ID) -> list[int]:
    """[a, b] -> [blank, a, blank, b, blank]: blanks give transitions their own frames."""
    result = [blank] * (2 * len(ids) + 1)
    result[1::2] = ids
    return result
