"""Russian text normalisation before synthesis.

Every TTS engine reads the output of `normalize`, so engines see words and punctuation only:
numbers are spelled out in the case and gender their noun asks for, units, currencies and common
abbreviations are expanded, quotes and control characters are dropped and dashes become pauses.
Stress marks ('+' before a vowel, U+0301 after it) are kept on request, as U+0301 after the
stressed vowel, for the engines that set a word's stress from them; they are never read aloud.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from num2words.lang_RU import Num2Word_RU

_N2W = Num2Word_RU()
_CASES = ("n", "g", "d", "a", "i", "p")
_CASE_INDEX = {case: i for i, case in enumerate(_CASES)}


def _fold(word: str) -> str:
    """Lower case with ё read as е, for comparing words however they were typed."""
    return word.lower().replace("ё", "е")


# ---------------------------------------------------------------------------------------------
# Nouns whose full paradigm is known: units, currencies, multipliers and the calendar words.


@dataclass(frozen=True)
class _Noun:
    """A noun with its singular and plural forms (cases n, g, d, a, i, p).

    `adjective` holds the forms of an agreeing adjective ("квадратный метр"); `tail` is text that
    follows unchanged ("километр в час").
    """

    gender: str
    sg: tuple[str, ...]
    pl: tuple[str, ...]
    adjective: tuple[tuple[str, ...], tuple[str, ...]] | None = None
    tail: str = ""

    def slot(self, number: str, case: str) -> str:
        return (self.sg if number == "sg" else self.pl)[_CASE_INDEX[case]]

    def counted(self, n: int, case: str, fraction: bool = False) -> str:
        """The form that follows the numeral `n` standing in `case`."""
        number, noun_case, adj_number, adj_case = _count_slots(n, case, fraction)
        words = [self.slot(number, noun_case)]
        if self.adjective:
            adj = self.adjective[0 if adj_number == "sg" else 1]
            words.insert(0, adj[_CASE_INDEX[adj_case]])
        if self.tail:
            words.append(self.tail)
        return " ".join(words)

    def matching_cases(self, word: str, n: int, fraction: bool) -> list[str]:
        """Cases of a numeral `n` for which `word` is the form its noun takes."""
        key = _fold(word)
        return [c for c in _CASES if _fold(self.counted_noun(n, c, fraction)) == key]

    def counted_noun(self, n: int, case: str, fraction: bool) -> str:
        number, noun_case, _, _ = _count_slots(n, case, fraction)
        return self.slot(number, noun_case)

    def forms(self) -> set[str]:
        return {_fold(f) for f in self.sg + self.pl}


def _count_slots(n: int, case: str, fraction: bool) -> tuple[str, str, str, str]:
    """Number and case of the noun (and of an adjective before it) after the numeral `n`."""
    if fraction:
        return "sg", "g", "sg", "g"
    if case in ("n", "a"):
        if 11 <= n % 100 <= 14:
            return "pl", "g", "pl", "g"
        if n % 10 == 1:
            return "sg", case, "sg", case
        if 2 <= n % 10 <= 4:
            return "sg", "g", "pl", "g"
        return "pl", "g", "pl", "g"
    if n % 10 == 1 and n % 100 != 11:
        return "sg", case, "sg", case
    return "pl", case, "pl", case


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


def _noun(gender: str, sg: str, pl: str, **extra: object) -> _Noun:
    return _Noun(gender, tuple(sg.split()), tuple(pl.split()), **extra)  # type: ignore[arg-type]


def _hard_masc(stem: str) -> _Noun:
    """A masculine noun of the hard type: километр, доллар, процент."""
    velar = stem[-1] in "гкхжшчщ"
    return _noun(
        "m",
        f"{stem} {stem}а {stem}у {stem} {stem}ом {stem}е",
        f"{stem}{'и' if velar else 'ы'} {stem}ов {stem}ам "
        f"{stem}{'и' if velar else 'ы'} {stem}ами {stem}ах",
    )


def _fem_a(stem: str) -> _Noun:
    """A feminine noun ending in -а: тонна, минута, копейка."""
    soft = stem[-1] in "гкхжшчщ"
    return _noun(
        "f",
        f"{stem}а {stem}{'и' if soft else 'ы'} {stem}е {stem}у {stem}ой {stem}е",
        f"{stem}{'и' if soft else 'ы'} {stem[:-2] + 'ек' if stem.endswith('йк') else stem} "
        f"{stem}ам {stem}{'и' if soft else 'ы'} {stem}ами {stem}ах",
    )


_ADJ_SQUARE = (
    _words("квадратный квадратного квадратному квадратный квадратным квадратном"),
    _words("квадратные квадратных квадратным квадратные квадратными квадратных"),
)
_ADJ_CUBIC = (
    _words("кубический кубического кубическому кубический кубическим кубическом"),
    _words("кубические кубических кубическим кубические кубическими кубических"),
)

_KM = _hard_masc("километр")
_METRE = _hard_masc("метр")
_YEAR = _noun("m", "год года году год годом году", "годы лет годам годы годами годах")
_YEAR_WORDS = {
    "год": ("sg", ("n", "a")), "года": ("sg", ("g",)), "году": ("sg", ("p", "d")),
    "годом": ("sg", ("i",)), "годе": ("sg", ("p",)), "годы": ("pl", ("n", "a")),
    "годов": ("pl", ("g",)), "годам": ("pl", ("d",)), "годами": ("pl", ("i",)),
    "годах": ("pl", ("p",)),
}
_CENTURY = _noun("m", "век века веку век веком веке", "века веков векам века веками веках")
_THOUSAND = _noun(
    "f",
    "тысяча тысячи тысяче тысячу тысячей тысяче",
    "тысячи тысяч тысячам тысячи тысячами тысячах",
)
_NOUNS: dict[str, _Noun] = {
    "процент": _hard_masc("процент"),
    "доллар": _hard_masc("доллар"),
    "цент": _hard_masc("цент"),
    "фунт": _hard_masc("фунт"),
    "евро": _noun("m", "евро " * 6, "евро " * 6),
    "рубль": _noun("m", "рубль рубля рублю рубль рублём рубле",
                   "рубли рублей рублям рубли рублями рублях"),
    "юань": _noun("m", "юань юаня юаню юань юанем юане",
                  "юани юаней юаням юани юанями юанях"),
    "копейка": _fem_a("копейк"),
    "тысяча": _THOUSAND,
    "миллион": _hard_masc("миллион"),
    "миллиард": _hard_masc("миллиард"),
    "триллион": _hard_masc("триллион"),
    "километр": _KM,
    "метр": _METRE,
    "сантиметр": _hard_masc("сантиметр"),
    "миллиметр": _hard_masc("миллиметр"),
    "килограмм": _hard_masc("килограмм"),
    "грамм": _hard_masc("грамм"),
    "тонна": _fem_a("тонн"),
    "литр": _hard_masc("литр"),
    "час": _noun("m", "час часа часу час часом часе", "часы часов часам часы часами часах"),
    "минута": _fem_a("минут"),
    "секунда": _fem_a("секунд"),
    "гектар": _hard_masc("гектар"),
    "градус": _hard_masc("градус"),
    "год": _YEAR,
    "век": _CENTURY,
}
_NOUN_BY_FORM: dict[str, _Noun] = {}
for _lemma_noun in _NOUNS.values():
    for _form in _lemma_noun.forms():
        _NOUN_BY_FORM.setdefault(_form, _lemma_noun)

_SQ_KM = _Noun("m", _KM.sg, _KM.pl, adjective=_ADJ_SQUARE)
_SQ_M = _Noun("m", _METRE.sg, _METRE.pl, adjective=_ADJ_SQUARE)
_CUBIC_M = _Noun("m", _METRE.sg, _METRE.pl, adjective=_ADJ_CUBIC)
_KMH = _Noun("m", _KM.sg, _KM.pl, tail="в час")
_MPS = _Noun("m", _METRE.sg, _METRE.pl, tail="в секунду")
_CELSIUS = _Noun("m", _NOUNS["градус"].sg, _NOUNS["градус"].pl, tail="Цельсия")

# Abbreviations and symbols that stand for a unit after a number. Order matters: longer first.
_UNITS: list[tuple[str, _Noun]] = [
    (r"км/ч", _KMH),
    (r"м/с", _MPS),
    (r"кв\.\s?км|км²", _SQ_KM),
    (r"кв\.\s?м|м²", _SQ_M),
    (r"куб\.\s?м|м³", _CUBIC_M),
    (r"°\s?[CС]", _CELSIUS),
    (r"°", _NOUNS["градус"]),
    (r"%", _NOUNS["процент"]),
    (r"\$|USD|долл\.?", _NOUNS["доллар"]),
    (r"€|EUR", _NOUNS["евро"]),
    (r"₽|RUB|руб\.?|р\.", _NOUNS["рубль"]),
    (r"£", _NOUNS["фунт"]),
    (r"коп\.?", _NOUNS["копейка"]),
    (r"тыс\.?", _THOUSAND),
    (r"млн\.?", _NOUNS["миллион"]),
    (r"млрд\.?", _NOUNS["миллиард"]),
    (r"трлн\.?", _NOUNS["триллион"]),
    (r"гг\.?", _YEAR),
    (r"стр\.?", _fem_a("страниц")),
    (r"экз\.?", _hard_masc("экземпляр")),
    (r"км", _KM),
    (r"см", _NOUNS["сантиметр"]),
    (r"мм", _NOUNS["миллиметр"]),
    (r"кг", _NOUNS["килограмм"]),
    (r"га", _NOUNS["гектар"]),
    (r"мин\.?", _NOUNS["минута"]),
    (r"сек\.?", _NOUNS["секунда"]),
    (r"гр\.?", _NOUNS["грамм"]),
    (r"г\.?", _NOUNS["грамм"]),
    (r"т\.?", _NOUNS["тонна"]),
    (r"л\.?", _NOUNS["литр"]),
    (r"ч\.?", _NOUNS["час"]),
    (r"м", _METRE),
    # "с" (seconds) only where no word follows: "5 с половиной" is not a unit.
    (r"с\.?(?!\s+[а-яё])", _NOUNS["секунда"]),
]
_DISTANCES = (_KM, _METRE, _NOUNS["сантиметр"], _NOUNS["миллиметр"])
_UNIT_PATTERN = "|".join(f"(?:{p})" for p, _ in _UNITS)
_UNIT_RE = re.compile(rf"[ \u00a0]?(?P<unit>{_UNIT_PATTERN})(?![\w²³])", re.IGNORECASE)
_UNIT_COMPILED = [(re.compile(rf"(?:{p})$", re.IGNORECASE), noun) for p, noun in _UNITS]


def _unit_noun(text: str) -> _Noun:
    for pattern, noun in _UNIT_COMPILED:
        if pattern.match(text):
            return noun
    raise ValueError(text)


_MONTHS_GEN = _words("января февраля марта апреля мая июня июля августа сентября октября ноября "
                     "декабря")
_MONTH_FORMS = set(_MONTHS_GEN)
for _stem in ("январ", "феврал", "апрел", "июн", "июл", "сентябр", "октябр", "ноябр", "декабр"):
    _MONTH_FORMS.update(_stem + e for e in ("ь", "ю", "ем", "ём", "е"))
for _stem in ("март", "август"):
    _MONTH_FORMS.update(_stem + e for e in ("", "у", "ом", "е"))
_MONTH_FORMS.update(("май", "маю", "маем", "мае"))
_MONTH_FORMS = {_fold(m) for m in _MONTH_FORMS}
_MONTHS_GEN_FOLDED = {_fold(m) for m in _MONTHS_GEN}


# ---------------------------------------------------------------------------------------------
# Gender of nouns outside the paradigm table: a list of common feminine nouns plus endings.

_FEMININE_LEMMAS = _words("страна область республика компания организация неделя минута секунда "
                          "тонна штука единица партия позиция ставка сделка школа больница семья "
                          "жертва женщина улица станция скважина линия бригада дивизия ракета "
                          "машина квартира копейка гривна марка книга статья страница версия игра "
                          "победа медаль точка часть площадь вакцина доза акция облигация "
                          "программа система группа команда модель серия категория ступень "
                          "степень мощность скорость сумма цена зона территория деревня провинция "
                          "граница дорога трасса авария катастрофа атака операция попытка встреча "
                          "сессия выставка премия награда смена волна очередь ночь дверь "
                          "комната палата фирма корпорация отрасль газета буква задача проблема")


def _fem_forms(lemma: str) -> tuple[str, ...]:
    if lemma.endswith("ия"):
        stem = lemma[:-2]
        return tuple(stem + e for e in ("ия", "ии", "ию", "ией"))
    if lemma.endswith("я"):
        stem = lemma[:-1]
        return tuple(stem + e for e in ("я", "и", "е", "ю", "ей"))
    if lemma.endswith("а"):
        stem = lemma[:-1]
        soft = stem[-1] in "гкхжшчщ"
        return tuple(stem + e for e in ("а", "и" if soft else "ы", "е", "у", "ой", "ей"))
    if lemma.endswith("ь"):
        stem = lemma[:-1]
        return tuple(stem + e for e in ("ь", "и", "ью"))
    return (lemma,)


_FEMININE_FORMS = {_fold(f) for lemma in _FEMININE_LEMMAS for f in _fem_forms(lemma)}
_FEM_ENDINGS = {
    "n": ("а", "я", "ость", "есть"),
    "a": ("у", "ю", "ость", "есть"),
    "g": ("ы", "и"),
    "d": ("е", "и"),
    "i": ("ой", "ей", "ью"),
    "p": (),
}
_ADJ_RE = re.compile(
    r"(ый|ий|ой|ая|яя|ое|ее|ые|ие|ых|их|ым|им|ыми|ими|ую|юю|ого|его|ому|ему|ом|ем)$"
)


def _guess_gender(noun: str, adjective: str, n: int, case: str) -> str:
    """Gender of the noun after a numeral, from a word list or from its ending."""
    word = _fold(noun)
    adj = _fold(adjective)
    ones = n % 10 == 1 and n % 100 != 11
    if adj:
        if case in ("n", "a") and ones:
            if adj.endswith(("ая", "яя", "ую", "юю")):
                return "f"
            if adj.endswith(("ое", "ее")):
                return "n"
            return "m"
        if case not in ("n", "a") and adj.endswith(("ой", "ей")):
            return "f"
        if case in ("n", "a") and not ones and adj.endswith(("ые", "ие")):
            return "f"
    if word in _FEMININE_FORMS:
        return "f"
    if ones:
        if case == "n" and word.endswith(("о", "е")):
            return "n"
        return "f" if word.endswith(_FEM_ENDINGS[case]) and _FEM_ENDINGS[case] else "m"
    if case in ("n", "a") and 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        return "f" if word.endswith(("ы", "и")) else "m"
    return "m"


# ---------------------------------------------------------------------------------------------
# Prepositions and the cases they allow, the most likely first.

_PREP_CASES: dict[str, tuple[str, ...]] = {
    "в": ("p", "a"), "во": ("p", "a"), "на": ("a", "p"), "о": ("p",), "об": ("p",),
    "обо": ("p",), "при": ("p",), "за": ("a", "i"), "про": ("a",), "через": ("a",),
    "спустя": ("a",), "к": ("d",), "ко": ("d",), "благодаря": ("d",), "согласно": ("d",),
    "вопреки": ("d",), "с": ("g", "i"), "со": ("g", "i"), "над": ("i",), "под": ("i", "a"),
    "перед": ("i",), "между": ("i",), "смотри": ("a",), "см": ("a",),
}
for _prep in _words("от до из без для у около более менее свыше после вместо кроме среди против "
                    "порядка выше ниже больше меньше возле вокруг мимо ради из-за из-под вблизи "
                    "накануне течение ряда"):
    _PREP_CASES[_prep] = ("g",)

_SG_CASE_ENDINGS = {
    "n": None, "a": None, "g": ("а", "я", "ы", "и"), "d": ("у", "ю", "е", "и"),
    "i": ("ом", "ем", "ём", "ой", "ей", "ью"), "p": ("е", "и"),
}


def _unknown_noun_case(word: str, n: int, prep_cases: tuple[str, ...]) -> str:
    """Case of a numeral from the ending of an unlisted noun and the preposition before it."""
    w = _fold(word)
    if n % 10 == 1 and n % 100 != 11:
        for case in prep_cases:
            endings = _SG_CASE_ENDINGS[case]
            if case == "a" and "p" in prep_cases and w.endswith(("е", "и")):
                continue  # "на 1-й странице": the location, not the direction
            if endings is None or w.endswith(endings):
                return case
        return "n"
    if w.endswith(("ами", "ями")):
        return "i"
    if w.endswith(("ах", "ях")):
        return "p"
    if w.endswith(("ам", "ям")):
        return "d"
    for case in prep_cases:
        if case in ("n", "a", "g"):
            return case
    return "n"


# ---------------------------------------------------------------------------------------------
# Spelling numbers.


def _cardinal(n: int, case: str = "n", gender: str = "m") -> str:
    if gender != "m" and n >= 1000:
        # only the last group agrees with the noun: "один миллион ... одна целая"
        if n % 1000 == 0:
            return _cardinal(n, case)
        return f"{_cardinal(n - n % 1000, case)} {_cardinal(n % 1000, case, gender)}"
    words = _N2W.to_cardinal(n, case=case, gender=gender, animate=False).split()
    if len(words) > 1 and words[0] in ("одна", "одной", "одну") and words[1].startswith("тысяч"):
        words = words[1:]
    return " ".join(words)


def _ordinal(n: int, case: str = "n", gender: str = "m", plural: bool = False) -> str:
    return _N2W.to_ordinal(n, case=case, gender=gender if not plural else "m", plural=plural,
                           animate=False)


_WHOLE = _noun("f", "целая целой целой целую целой целой", "целые целых целым целые целыми целых")
_PARTS = tuple(
    _noun("f", " ".join(stem + e for e in ("ая", "ой", "ой", "ую", "ой", "ой")),
          " ".join(stem + e for e in ("ые", "ых", "ым", "ые", "ыми", "ых")))
    for stem in ("десят", "сот", "тысячн", "десятитысячн", "стотысячн", "миллионн")
)


def _decimal(whole: str, frac: str, case: str = "n") -> str:
    """'3,5' -> 'три целых пять десятых' (in any case)."""
    w = int(whole)
    words = [_cardinal(w, case, "f"), _fraction_word(_WHOLE, w, case)]
    if len(frac) > len(_PARTS):
        return " ".join(words[:1] + ["запятая"] + [_cardinal(int(d)) for d in frac])
    f = int(frac)
    words += [_cardinal(f, case, "f"), _fraction_word(_PARTS[len(frac) - 1], f, case)]
    return " ".join(words)


def _fraction_word(word: _Noun, n: int, case: str) -> str:
    """'целая', 'десятая' are adjectives: singular after 1, genitive plural after 2-4 too."""
    if n % 10 == 1 and n % 100 != 11:
        return word.slot("sg", case)
    return word.slot("pl", "g" if case in ("n", "a") else case)


def _digits(s: str) -> str:
    return " ".join(_cardinal(int(d)) for d in s)


_ORDINAL_SEARCH = [(c, g, p) for p in (False, True) for g in ("m", "f", "n") for c in _CASES]


def _cardinal_suffix(n: int, suffix: str) -> bool:
    """'5-ти', '7-ми', '2-х' spell a cardinal; '5-й', '2-м', '1990-х' an ordinal."""
    few = 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14
    return suffix.lower() in ("ти", "ми", "мя") or (few and suffix.lower() in ("х", "ух", "ех",
                                                                              "ёх"))


def _with_suffix(n: int, suffix: str, case: str, gender: str, plural: bool,
                 prep_cases: tuple[str, ...] = ()) -> str:
    """A number written with an ending ('5-й', '1990-х', '2-х'): pick a form with that ending.

    Forms are tried in the case and gender asked for, then in the cases the preposition allows,
    then in any case of that gender, then in any form at all.
    """
    suffix = suffix.lower()
    if _cardinal_suffix(n, suffix):
        for c in (case, *_CASES):
            words = _cardinal(n, c, gender)
            if _fold(words).endswith(_fold(suffix)):
                return words
    order = [(case, gender, plural)] + [(c, gender, plural) for c in prep_cases]
    order += [(c, gender, plural) for c in _CASES] + _ORDINAL_SEARCH
    for c, g, p in order:
        words = _ordinal(n, c, g, p)
        if _fold(words).endswith(_fold(suffix)):
            return words
    return _ordinal(n, case, gender, plural)


# ---------------------------------------------------------------------------------------------
# The number pass: each number is spelled with a look at the preposition before it and the noun
# (or unit) after it.

_NUMBER_RE = re.compile(
    r"(?<![\w.,])(?P<sign>[-−+](?=\d))?(?P<int>\d+)"
    r"(?:[.,](?P<frac>\d+)(?![.,]?\d))?"
    r"(?:-(?P<suf>[а-яё]{1,3})(?![\w-]))?"
    rf"(?:{_UNIT_RE.pattern})?",
    re.IGNORECASE,
)
_WORD_RE = re.compile(r"[ \u00a0]*([^\W\d_]+(?:-[^\W\d_]+)*)")
_LINK_RE = re.compile(r"[ \u00a0]*(?P<link>[-–—]|по|до|и|или)[ \u00a0]*[-−+]?\d+(?:[.,]\d+)?"
                      rf"(?:{_UNIT_RE.pattern})?", re.IGNORECASE)
_PREV_WORD_RE = re.compile(r"([^\W\d_]+(?:-[^\W\d_]+)?)[ \u00a0]*$")
_RANGE_TAIL_RE = re.compile(r"[-−+]?\d+(?:[.,]\d+)?[ \u00a0]*[-–—][ \u00a0]*$")
# After an abbreviation's dot: the text ends or a capitalised word (not an acronym) begins.
_SENTENCE_END_RE = re.compile(r"[ \u00a0]*(?:$|\n|[А-ЯЁA-Z](?![А-ЯЁA-Z]))")


@dataclass
class _Following:
    """What follows a number: a unit it carries, or the noun (and adjective) it counts."""

    noun: _Noun | None = None
    word: str = ""
    adjective: str = ""
    unit: str = ""  # the abbreviation or symbol, when the noun is written as one
    shared: bool = True  # False when the noun belongs to a later number ("с 5 по 7 год")


def _following(text: str, pos: int, unit: str | None) -> _Following:
    if unit:
        return _Following(noun=_unit_noun(unit.strip()), unit=unit.strip())
    shared = True
    link = _LINK_RE.match(text, pos)
    if link:
        shared = link.group("link") in "-–—"
        if link.group("unit"):
            linked = link.group("unit").strip()
            return _Following(noun=_unit_noun(linked), unit=linked, shared=shared)
        pos = link.end()
    first = _WORD_RE.match(text, pos)
    if not first:
        return _Following(shared=shared)
    word = first.group(1)
    known = _NOUN_BY_FORM.get(_fold(word))
    if known:
        return _Following(noun=known, word=word, shared=shared)
    adjective = ""
    if _ADJ_RE.search(_fold(word)) and len(word) > 3:
        second = _WORD_RE.match(text, first.end())
        if second:
            adjective, word = word, second.group(1)
            known = _NOUN_BY_FORM.get(_fold(word))
    return _Following(noun=known, word=word, adjective=adjective, shared=shared)


def _prev_word(text: str, start: int) -> str:
    head = text[max(0, start - 60):start]
    tail = _RANGE_TAIL_RE.search(head)
    if tail:
        head = head[:tail.start()]
    m = _PREV_WORD_RE.search(head)
    return _fold(m.group(1)) if m else ""


def _choose_case(candidates: list[str], prep_cases: tuple[str, ...]) -> str:
    for case in prep_cases:
        if case in candidates:
            return case
    if candidates:
        return candidates[0]
    return prep_cases[0] if prep_cases else "n"


def _spell_number(m: re.Match[str], text: str) -> str:
    sign = {"-": "минус ", "−": "минус ", "+": "плюс "}.get(m.group("sign") or "", "")
    int_s, frac_s, suffix, unit = m.group("int"), m.group("frac"), m.group("suf"), m.group("unit")
    n = int(int_s)
    prev = _prev_word(text, m.start())
    prep_cases = _PREP_CASES.get(prev, ())
    after = text[m.end():]
    dot = "." if unit and unit.endswith(".") and _SENTENCE_END_RE.match(after) else ""
    fol = _following(text, m.end(), unit)
    noun = fol.noun
    unit_text = ""

    if (len(int_s) > 1 and int_s.startswith("0")) or len(int_s) > 15:
        words = _digits(int_s) + (" " + _digits(frac_s) if frac_s else "")
        return sign + words + (" " + noun.counted(5, "n") if unit and noun else "") + dot

    year_like = 1000 <= n <= 2999 and not frac_s
    year_unit = _fold(fol.unit).startswith("г") and noun in (_YEAR, _NOUNS["грамм"])
    year_word = _YEAR_WORDS.get(_fold(fol.word))
    in_year = _fold(fol.word) in ("году", "годе")  # "в 21 году" is a year, "21 год" a count
    if ((year_like or suffix) and (year_unit or year_word)) or in_year:
        if year_word and fol.shared:
            plural = year_word[0] == "pl"
            case = _choose_case(list(year_word[1]), prep_cases)
        else:
            plural = _fold(fol.unit).startswith("гг")
            case = _year_case(prev, prep_cases)
        words = (_with_suffix(n, suffix, case, "m", plural) if suffix else _ordinal(n, case))
        if unit:
            unit_text = " " + _YEAR.slot("pl" if plural else "sg", case)
        return sign + words + unit_text + dot

    if noun is _CENTURY and not frac_s:
        forms = [(num, c) for num in ("sg", "pl") for c in _CASES
                 if _fold(_CENTURY.slot(num, c)) == _fold(fol.word)]
        case = _choose_case([c for _, c in forms], prep_cases)
        plural = bool(forms) and all(num == "pl" for num, _ in forms)
        return sign + (_with_suffix(n, suffix, case, "m", plural) if suffix
                       else _ordinal(n, case, "m", plural))

    if not unit and not frac_s and 1 <= n <= 31 and _fold(fol.word) in _MONTHS_GEN_FOLDED:
        case = prep_cases[0] if prep_cases and prep_cases[0] in ("g", "d", "a") else "g"
        if prev in ("на", "по"):
            case = "a"
        return sign + (_with_suffix(n, suffix, case, "n", False) if suffix
                       else _ordinal(n, case, "n"))

    if not unit and year_like and not suffix and prev in _MONTH_FORMS:
        tail = "" if _fold(fol.word) in _YEAR_WORDS else " года"
        return sign + _ordinal(n, "g") + tail

    bare_year = (1800 <= n <= 2100 and not frac_s and not suffix and not fol.noun
                 and (not fol.word or fol.word[0].isupper()))
    if bare_year and prev in _YEAR_PREPOSITIONS:
        return sign + _ordinal(n, _year_case(prev, prep_cases))

    fraction = frac_s is not None
    if noun is not None:
        candidates = noun.matching_cases(fol.word, n, fraction) if fol.word and fol.shared else []
        if unit or not fol.shared:
            case = _choose_case([], _unit_prep_cases(prev, prep_cases, noun))
        else:
            case = _choose_case(candidates, prep_cases)
        gender = noun.gender
        if unit:
            unit_text = " " + noun.counted(n, case, fraction)
    elif fol.word:
        # an ordinal agrees with its noun like an adjective: as after "one"
        agree = 1 if suffix and not _cardinal_suffix(n, suffix) else n
        case = _unknown_noun_case(fol.word, agree, prep_cases) if fol.shared else (
            _choose_case([], _unit_prep_cases(prev, prep_cases)))
        gender = _guess_gender(fol.word, fol.adjective, agree, case)
    else:
        case = _choose_case([], _unit_prep_cases(prev, prep_cases))
        gender = "m"

    if suffix:
        words = _with_suffix(n, suffix, case, gender, False, prep_cases)
    elif fraction:
        words = _decimal(int_s, frac_s, case)
    else:
        words = _cardinal(n, case, gender)
    return sign + words + unit_text + dot


def _unit_prep_cases(prev: str, prep_cases: tuple[str, ...],
                     noun: _Noun | None = None) -> tuple[str, ...]:
    """Cases for a numeral whose noun form says nothing (a unit, or no noun at all).

    'в 5 км' is a distance (prepositional); 'в 10 ч', 'в 100 рублей', 'на 5%' take the accusative.
    """
    if prev in ("на", "за", "через"):
        return ("a",)
    if prev in ("в", "во"):
        return ("p",) if noun in _DISTANCES else ("a",)
    return prep_cases


_YEAR_PREPOSITIONS = {"в", "во", "с", "со", "до", "к", "ко", "от", "после", "по"}


def _year_case(prev: str, prep_cases: tuple[str, ...]) -> str:
    """Case of 'год' written as 'г.': 'в 2026 г.' -> году, 'октября 2026 г.' -> года."""
    if prev in _MONTH_FORMS:
        return "g"
    if prev in ("в", "во", "о", "об", "при"):
        return "p"
    return prep_cases[0] if prep_cases else "n"


# ---------------------------------------------------------------------------------------------
# Other passes.

_QUOTES_RE = re.compile("[«»„“”‟\"‘’‚‛`]")
STRESS = "\u0301"
"""The canonical stress mark in normalised text: a combining acute after the stressed vowel."""
RUSSIAN_VOWELS = "аеёиоуыэюяАЕЁИОУЫЭЮЯ"
_CYRILLIC = "а-яёА-ЯЁ"
_PLUS_STRESS_RE = re.compile(rf"(?:(?<![\w+])|(?<=[{_CYRILLIC}]))\+([{RUSSIAN_VOWELS}])")
_STRAY_PLUS_RE = re.compile(rf"(?<=[{_CYRILLIC}])\+(?=[{_CYRILLIC}])|(?<=[{_CYRILLIC}])\+(?![\w+])")
_STRESS_AFTER_VOWEL_RE = re.compile(rf"(?<=[{RUSSIAN_VOWELS}])\u0301")
_ACCENTS_RE = re.compile("[\u0300\u0301]")
_ACUTE_NOT_AFTER_VOWEL_RE = re.compile(rf"(?<![{RUSSIAN_VOWELS}])\u0301")
_MARKED_WORD_RE = re.compile(rf"[{_CYRILLIC}\u0301]+")
_HELD = "\uf8ff"  # a private-use character holds a mark's place while marks are sorted out
_HELD_WORD_RE = re.compile(rf"[{_CYRILLIC}{_HELD}]+")
_CONTROL_IN_WORD_RE = re.compile(r"(?<=[^\W\d_])[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]+(?=[^\W\d_])")
_INVISIBLE_RE = re.compile("[\u00ad\u200b\u200c\u200d\u2060\ufeff]")
_SPACES_RE = re.compile(r"[^\S\n]+")
_THOUSANDS_RE = re.compile(
    r"(?<![\d.,])(\d{1,3})((?:[ \u00a0\u202f\u2009]\d{3})+)(?![\d]|[.,]\d{3}\b)"
)
_SCIENTIFIC_RE = re.compile(r"(?<![\w.,])(\d+(?:[.,]\d+)?)[eE]([-−+]?\d{1,3})(?!\w)")
_DATE_RE = re.compile(r"(?<![\d.])(\d{1,2})\.(\d{1,2})\.(\d{4})(?![\d])")
_TIME_RE = re.compile(r"(?<![\d:])([01]?\d|2[0-3]):([0-5]\d)(?![\d:])")
_PREFIX_CURRENCY_RE = re.compile(
    r"([$€₽£])[ \u00a0]?(\d+(?:[.,]\d+)?)"
    r"((?:[ \u00a0](?:тыс\.?|млн\.?|млрд\.?|трлн\.?|тысяч[а-я]*|миллион[а-я]*|миллиард[а-я]*"
    r"|триллион[а-я]*)(?![а-я]))?)",
    re.IGNORECASE,
)
_ROMAN_RE = re.compile(r"\b([IVXLC]+)(?=(?:[ \u00a0]*[–—-][ \u00a0]*[IVXLC]+)?[ \u00a0]+"
                       r"(?:век|в\.|вв\.|столети))")
_ROMAN_VALUES = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100}
_CENTURY_ABBR_RE = re.compile(r"(\d+)[ \u00a0]+в\.(?=\s|$)")

_EARLY_ABBR: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"(?<!\w)т\.[ \u00a0]?е\.", re.I), "то есть"),
    (re.compile(r"(?<!\w)т\.[ \u00a0]?д\.", re.I), "так далее"),
    (re.compile(r"(?<!\w)т\.[ \u00a0]?п\.", re.I), "тому подобное"),
    (re.compile(r"(?<!\w)т\.[ \u00a0]?к\.", re.I), "так как"),
    (re.compile(r"(?<!\w)т\.[ \u00a0]?н\.", re.I), "так называемый"),
    (re.compile(r"(?<!\w)до[ \u00a0]н\.[ \u00a0]?э\.", re.I), "до нашей эры"),
    (re.compile(r"(?<!\w)н\.[ \u00a0]?э\.", re.I), "нашей эры"),
    (re.compile(r"(?<!\w)и[ \u00a0]др\.", re.I), "и другие"),
    (re.compile(r"(?<!\w)и[ \u00a0]пр\.", re.I), "и прочее"),
    (re.compile(r"(?<!\w)№(?=[ \u00a0]*\d)"), "номер"),
    (re.compile(r"(?<!\w)§(?=[ \u00a0]*\d)"), "параграф"),
]
_BEFORE_NAMES = {"имени", "улица", "смотри", "город", "номер", "параграф"}
# Expanded after numbers, where a digit before them has already been read.
_LATE_ABBR: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"(?<!\w)рт\.[ \u00a0]?ст\.", re.I), "ртутного столба"),
    (re.compile(r"(?<!\w)вв\.", re.I), "века"),
    (re.compile(r"(?<!\w)напр\.", re.I), "например"),
    (re.compile(r"(?<!\w)им\.(?=[ \u00a0]*[А-ЯЁ])"), "имени"),
    (re.compile(r"(?<!\w)ул\.", re.I), "улица"),
    (re.compile(r"(?<!\w)пр-т(?!\w)", re.I), "проспект"),
    (re.compile(r"(?<!\w)см\.(?=[ \u00a0])", re.I), "смотри"),
    (re.compile(r"(?<!\w)г\.(?=[ \u00a0]*[А-ЯЁ])"), "город"),
    (re.compile(r"(?<!\w)тыс\.?(?!\w)", re.I), "тысяч"),
    (re.compile(r"(?<!\w)млн\.?(?!\w)", re.I), "миллионов"),
    (re.compile(r"(?<!\w)млрд\.?(?!\w)", re.I), "миллиардов"),
    (re.compile(r"(?<!\w)трлн\.?(?!\w)", re.I), "триллионов"),
    (re.compile(r"(?<!\w)руб\.", re.I), "рублей"),
    (re.compile(r"(?<!\w)долл\.", re.I), "долларов"),
    (re.compile(r"(?<!\w)гг\.", re.I), "годы"),
]
_AFTER_MULTIPLIER_RE = re.compile(
    r"(?P<mult>(?<!\w)(?:тысяч|миллион|миллиард|триллион)[а-я]*)[ \u00a0]+"
    rf"(?P<unit>{_UNIT_PATTERN})(?![\w²³])",
    re.IGNORECASE,
)

_INITIALISMS = {
    "США": "сэ-шэ-а", "РФ": "эр-эф", "ЕС": "е-эс", "ООН": "оон", "СНГ": "эс-эн-гэ",
    "ЕАЭС": "е-а-э-эс", "МВФ": "эм-вэ-эф", "ВВП": "вэ-вэ-пэ", "ФРГ": "эф-эр-гэ",
    "КНР": "ка-эн-эр", "КНДР": "ка-эн-дэ-эр", "ОАЭ": "о-а-э", "НАТО": "нато", "ЮАР": "юар",
    "ЦБ": "цэ-бэ", "СМИ": "сми", "МИД": "мид", "ВОЗ": "воз", "ОПЕК": "опек", "АЭС": "а-э-эс",
    "ГЭС": "гэс", "МЧС": "эм-чэ-эс", "ГИБДД": "гэ-и-бэ-дэ-дэ", "ТВ": "тэ-вэ", "ИИ": "и-и",
    "ЖКХ": "жэ-ка-ха", "ВМФ": "вэ-эм-эф", "ФСБ": "эф-эс-бэ", "МВД": "эм-вэ-дэ",
    "МГУ": "эм-гэ-у", "РАН": "ран", "ТАСС": "тасс", "РЖД": "эр-жэ-дэ", "НДС": "эн-дэ-эс",
}
_LETTER_NAMES = {
    "Б": "бэ", "В": "вэ", "Г": "гэ", "Д": "дэ", "Ж": "жэ", "З": "зэ", "К": "ка", "Л": "эль",
    "М": "эм", "Н": "эн", "П": "пэ", "Р": "эр", "С": "эс", "Т": "тэ", "Ф": "эф", "Х": "ха",
    "Ц": "цэ", "Ч": "чэ", "Ш": "ша", "Щ": "ща", "Й": "й", "Ъ": "твёрдый", "Ь": "мягкий",
}
_VOWELS = set("АЕЁИОУЫЭЮЯ")
_CAPS_RE = re.compile(r"(?<!\w)([А-ЯЁ]{2,})(?!\w)")
_SYMBOLS = {"$": " долларов ", "€": " евро ", "₽": " рублей ", "£": " фунтов ",
            "%": " процентов ", "°": " градусов ", "&": " и ", "+": " плюс ", "=": " равно ",
            "@": " собака ", "/": " ", "\\": " ",
            "*": " ", "#": " ", "_": " ", "|": " ", "~": " ", "^": " ", "<": " ", ">": " ",
            "[": ", ", "]": ", ", "{": ", ", "}": ", ", "(": ", ", ")": ", "}
_SYMBOLS_RE = re.compile("|".join(re.escape(s) for s in _SYMBOLS))
_DASH_RE = re.compile(r"[ \u00a0]*[—–―‒][ \u00a0]*|(?<=\s)-(?=\s)|^-(?=\s)", re.MULTILINE)
_PUNCT_SPACE_RE = re.compile(r"[ \u00a0]+([,.;:!?…])")
_COMMA_RUN_RE = re.compile(r"(?:,[ ]*){2,}")
_COMMA_BEFORE_STOP_RE = re.compile(r",[ ]*([.;:!?…])")
_LEADING_COMMA_RE = re.compile(r"(^|[.!?…][ ]+),[ ]*", re.MULTILINE)
_SPACE_AFTER_PUNCT_RE = re.compile(r"([,;:!?…])(?=[^\W\d_])")
_DIGITS_RE = re.compile(r"\d+")


_FRACTION_RE = re.compile(r"(?<![\w./\\])(\d{1,6})/(\d{1,4})(?![\w/])")
_DOT_TIME_RE = re.compile(r"(?<![\d.,])([01]?\d|2[0-3])\.([0-5]\d)(?![\d]|[.,]\d)")
_TIME_PREPOSITIONS = {"в", "во", "на", "с", "со", "до", "к", "ко", "около", "после", "от",
                      "между", "и", "по"}
_NOT_TIME_WORDS = {"раз", "раза", "балла", "баллов", "очка", "очков"}


def _fraction(m: re.Match[str]) -> str:
    """'3/4' -> 'три четвёртых', 'в 1/3' -> 'в одной третьей': a numerator (feminine, in the
    case the preposition asks) over an ordinal denominator that agrees with it."""
    num, den = int(m.group(1)), int(m.group(2))
    if den < 2:
        return m.group(0)
    prev = _prev_word(m.string, m.start())
    cases = ("p",) if prev in ("в", "во") else _unit_prep_cases(prev, _PREP_CASES.get(prev, ()))
    case = cases[0] if cases else "n"
    numerator = _cardinal(num, case, "f")
    if num % 10 == 1 and num % 100 != 11:
        return f"{numerator} {_ordinal(den, case, 'f')}"
    return f"{numerator} {_ordinal(den, 'g' if case in ('n', 'a') else case, 'f', True)}"


def _dot_time(m: re.Match[str]) -> str:
    """'в 13.30' -> 'в 13:30' where a preposition of time stands before it and no counted
    noun follows ('в 2.50 раза' stays a decimal)."""
    prev = _prev_word(m.string, m.start())
    following = _WORD_RE.match(m.string, m.end())
    word = _fold(following.group(1)) if following else ""
    if prev not in _TIME_PREPOSITIONS or word in _NOUN_BY_FORM or word in _NOT_TIME_WORDS:
        return m.group(0)
    return f"{m.group(1)}:{m.group(2)}"


_ROMAN_NUMERAL = r"(?=[IVXLCDM])M{0,3}(?:CM|CD|D?C{0,3})(?:XC|XL|L?X{0,3})(?:IX|IV|V?I{0,3})"
_REGNAL_RE = re.compile(rf"(?<![\w-])([А-ЯЁ][а-яё]+)[ \u00a0]+({_ROMAN_NUMERAL})(?![\w-])")
_FEMININE_NAMES = {"екатерин", "елизавет", "анн", "мари", "виктори", "изабелл", "ольг", "ирин",
                   "софи", "маргарит", "жанн", "христин", "елен"}
_NAME_CASES_M = (("ом", "i"), ("ем", "i"), ("ём", "i"), ("а", "g"), ("я", "g"), ("у", "d"),
                 ("ю", "d"), ("е", "p"))
_NAME_CASES_F = (("ой", "i"), ("ей", "i"), ("а", "n"), ("я", "n"), ("ы", "g"), ("и", "g"),
                 ("у", "a"), ("ю", "a"), ("е", "d"))
_PART_NOUNS: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "глав": ("f", (("ой", "i"), ("а", "n"), ("ы", "g"), ("е", "p"), ("у", "a"))),
    "книг": ("f", (("ой", "i"), ("а", "n"), ("и", "g"), ("е", "p"), ("у", "a"))),
    "част": ("f", (("ью", "i"), ("ь", "n"), ("и", "g"))),
    "статья": ("f", (("ья", "n"),)),
    "том": ("m", (("ом", "i"), ("а", "g"), ("у", "d"), ("е", "p"), ("", "n"))),
    "раздел": ("m", (("ом", "i"), ("а", "g"), ("у", "d"), ("е", "p"), ("", "n"))),
    "акт": ("m", (("ом", "i"), ("а", "g"), ("у", "d"), ("е", "p"), ("", "n"))),
}
_PART_RE = re.compile(rf"(?<![\w-])((?:глав|книг|част|том|раздел|акт)[а-яё]{{0,2}})[ \u00a0]+"
                      rf"({_ROMAN_NUMERAL})(?![\w-])", re.IGNORECASE)


def _roman_value(numeral: str) -> int:
    values = [_ROMAN_VALUES[ch] for ch in numeral]
    return sum(-v if i + 1 < len(values) and v < values[i + 1] else v
               for i, v in enumerate(values))


def _case_by_ending(word: str, endings: tuple[tuple[str, str], ...], prev: str) -> str:
    for ending, case in endings:
        if word.endswith(ending):
            if case in ("d", "p") and prev:
                allowed = _PREP_CASES.get(prev, ())
                return "p" if "p" in allowed else ("d" if "d" in allowed else case)
            return case
    return "n"


def _regnal(m: re.Match[str]) -> str:
    """'Пётр I' -> 'Пётр Первый', 'при Екатерине II' -> 'при Екатерине Второй'."""
    name, numeral = m.group(1), m.group(2)
    word = _fold(name)
    feminine = any(word.startswith(stem) for stem in _FEMININE_NAMES)
    prev = _prev_word(m.string, m.start())
    case = _case_by_ending(word, _NAME_CASES_F if feminine else _NAME_CASES_M, prev)
    ordinal = _ordinal(_roman_value(numeral), case, "f" if feminine else "m")
    return f"{name} {ordinal[:1].upper()}{ordinal[1:]}"


def _part(m: re.Match[str]) -> str:
    """'глава IV' -> 'глава четвёртая', 'в томе III' -> 'в томе третьем'."""
    noun = m.group(1)
    word = _fold(noun)
    stem = next(s for s in sorted(_PART_NOUNS, key=len, reverse=True) if word.startswith(s))
    gender, endings = _PART_NOUNS[stem]
    case = _case_by_ending(word[len(stem):], endings, _prev_word(m.string, m.start()))
    return f"{noun} {_ordinal(_roman_value(m.group(2)), case, gender)}"


_ABBR_NOUNS = {
    "стр": _fem_a("страниц"),
    "рис": _noun("m", "рисунок рисунка рисунку рисунок рисунком рисунке",
                 "рисунки рисунков рисункам рисунки рисунками рисунках"),
    "д": _noun("m", "дом дома дому дом домом доме", "дома домов домам дома домами домах"),
    "гл": _fem_a("глав"),
    "кв": _fem_a("квартир"),
}
_SEE_BEFORE_RE = re.compile(r"(?<!\w)см\.[ \u00a0]*$", re.IGNORECASE)
_ABBR_NOUN_RE = re.compile(r"(?<![\w.])(стр|рис|д|гл|кв)\.(?=[ \u00a0]*\d)", re.IGNORECASE)


def _abbr_noun(m: re.Match[str]) -> str:
    """'стр. 5' -> 'страница 5', 'на рис. 2' -> 'на рисунке 2', 'см. стр. 5' -> 'смотри
    страницу 5': the noun in the case of the preposition before it."""
    noun = _ABBR_NOUNS[m.group(1).lower()]
    prev = _prev_word(m.string, m.start())
    if prev in ("в", "во", "на", "о", "об", "при"):
        case = "p"
    elif prev == "смотри" or _SEE_BEFORE_RE.search(m.string, 0, m.start()):
        case = "a"
    else:
        allowed = _PREP_CASES.get(prev, ())
        case = allowed[0] if allowed else "n"
    return noun.slot("sg", case)


_LATIN_LETTERS = {
    "A": "эй", "B": "би", "C": "си", "D": "ди", "E": "и", "F": "эф", "G": "джи", "H": "эйч",
    "I": "ай", "J": "джей", "K": "кей", "L": "эль", "M": "эм", "N": "эн", "O": "оу", "P": "пи",
    "Q": "кью", "R": "ар", "S": "эс", "T": "ти", "U": "ю", "V": "ви", "W": "дабл-ю", "X": "экс",
    "Y": "уай", "Z": "зед",
}
_LATIN_ACRONYMS = {
    "NASA": "наса", "NATO": "нато", "UNESCO": "юнеско", "UNICEF": "юнисеф", "FIFA": "фифа",
    "UEFA": "уефа", "IKEA": "икеа", "OPEC": "опек", "ASCII": "аски", "LED": "лед",
    "PDF": "пэ-дэ-эф", "BMW": "бэ-эм-вэ", "IT": "ай-ти", "PR": "пиар", "VIP": "вип",
    "OK": "окей", "WWW": "дабл-ю дабл-ю дабл-ю", "WI-FI": "вай-фай", "DJ": "диджей",
    "NBA": "эн-би-эй", "CEO": "си-и-оу", "HTML": "эйч-ти-эм-эль",
}
_LATIN_CAPS_RE = re.compile(r"(?<![\w-])([A-Z]{2,6}|Wi-Fi|WI-FI)(?!\w|-[A-Za-z])")


def _latin_acronym(m: re.Match[str]) -> str:
    """'USB' -> 'ю-эс-би', 'NASA' -> 'наса': common Latin acronyms as Russians say them."""
    word = m.group(1).upper()
    if word in _LATIN_ACRONYMS:
        return _LATIN_ACRONYMS[word]
    return "-".join(_LATIN_LETTERS[ch] for ch in word)


def _stress_marks(text: str) -> str:
    """'+' before a vowel and U+0301 after it -> U+0301 after it; other marks dropped.

    A '+' inside or at the end of a Cyrillic word that no vowel follows is a misplaced mark and
    is dropped; a word keeps its first mark only. A '+' elsewhere ("2+2", "+5") stays a symbol.
    """
    text = text.replace(_HELD, "")
    text = _PLUS_STRESS_RE.sub(lambda m: m.group(1) + _HELD, text)
    text = _STRAY_PLUS_RE.sub("", text)
    text = _STRESS_AFTER_VOWEL_RE.sub(_HELD, text)
    text = _ACCENTS_RE.sub("", text)

    def first_only(m: re.Match[str]) -> str:
        head, mark, tail = m.group(0).partition(_HELD)
        return head + (STRESS if mark else "") + tail.replace(_HELD, "")

    return _HELD_WORD_RE.sub(first_only, text)


def strip_stress(text: str) -> str:
    """Text without its stress marks (as `normalize` gives it by default)."""
    return text.replace(STRESS, "")


def stressed_vowel(word: str) -> int | None:
    """Index among the vowels of `word` of the one marked by U+0301, or None if unmarked."""
    count = 0
    for i, ch in enumerate(word):
        if ch in RUSSIAN_VOWELS:
            if word[i + 1:i + 2] == STRESS:
                return count
            count += 1
    return None


def marked_words(text: str) -> list[str]:
    """Words of normalised text that carry a stress mark."""
    return [w for w in _MARKED_WORD_RE.findall(text) if STRESS in w]


def _clean(text: str) -> str:
    # An acute after anything but a vowel is dropped first, or NFC would fuse it ("г" -> "ѓ").
    text = _ACUTE_NOT_AFTER_VOWEL_RE.sub("", text)
    text = unicodedata.normalize("NFC", text)
    text = _stress_marks(text)
    text = _INVISIBLE_RE.sub("", text)
    text = _CONTROL_IN_WORD_RE.sub("", text)  # "при\x00вет" is one word, not two
    text = "".join(" " if unicodedata.category(ch)[0] == "C" and ch != "\n" else ch
                   for ch in text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _QUOTES_RE.sub("", text)
    text = re.sub(r"(?<![^\W\d_])'|'(?![^\W\d_])", "", text)
    text = text.replace("...", "…")
    text = _THOUSANDS_RE.sub(lambda m: m.group(1) + re.sub(r"\D", "", m.group(2)), text)
    text = re.sub(r"[\u00a0\u202f\u2009\u2007\u3000]", " ", text)
    # A paragraph break ends a sentence even when a heading has no full stop.
    text = re.sub(r"(?<=[^\s.!?…:;,])[ \t]*\n[ \t]*\n\s*", ".\n", text)
    return _SPACES_RE.sub(" ", text)


def _roman(m: re.Match[str]) -> str:
    s = m.group(1)
    values = [_ROMAN_VALUES[ch] for ch in s]
    total = sum(-v if i + 1 < len(values) and v < values[i + 1] else v
                for i, v in enumerate(values))
    return str(total)


def _scientific(m: re.Match[str]) -> str:
    """'1e10' -> 'десять в степени 10', '2,5e-3' -> '2,5 умножить на десять в степени -3'."""
    mantissa, exponent = m.group(1), m.group(2).replace("+", "").replace("−", "-")
    power = f"десять в степени {exponent}"
    return power if mantissa == "1" else f"{mantissa} умножить на {power}"


def _date(m: re.Match[str]) -> str:
    day, month, year = int(m.group(1)), int(m.group(2)), m.group(3)
    if not (1 <= day <= 31 and 1 <= month <= 12):
        return m.group(0)
    return f"{day} {_MONTHS_GEN[month - 1]} {year} года"


def _time(m: re.Match[str]) -> str:
    minutes = m.group(2)
    spoken = "ноль " + _cardinal(int(minutes)) if minutes.startswith("0") else minutes
    return f"{int(m.group(1))} {spoken}" if minutes != "00" else f"{int(m.group(1))} ноль ноль"


def _dotted(replacement: str) -> Callable[[re.Match[str]], str]:
    """Expand an abbreviation, keeping its dot when that dot also ends the sentence."""

    def sub(m: re.Match[str]) -> str:
        keep_stop = (m.group(0).endswith(".") and replacement not in _BEFORE_NAMES
                     and _SENTENCE_END_RE.match(m.string, m.end()))
        return replacement + ("." if keep_stop else "")
    return sub


def _after_multiplier(m: re.Match[str]) -> str:
    noun = _unit_noun(m.group("unit"))
    dot = "." if m.group("unit").endswith(".") and _SENTENCE_END_RE.match(m.string, m.end()) else ""
    return f"{m.group('mult')} {noun.counted(5, 'g')}{dot}"


def _initialism(m: re.Match[str]) -> str:
    word = m.group(1)
    if word in _INITIALISMS:
        return _INITIALISMS[word]
    consonant_run = re.search(r"[^АЕЁИОУЫЭЮЯ]{3}", word)
    starts_cluster = word[0] not in _VOWELS and word[1] not in _VOWELS
    readable = (len(word) >= 3 and any(ch in _VOWELS for ch in word)
                and not all(ch in _VOWELS for ch in word)
                and not consonant_run and not starts_cluster)
    if readable or len(word) > 5:
        return word.lower()
    return "-".join(_LETTER_NAMES.get(ch, ch.lower()) for ch in word)


def _century_abbr(m: re.Match[str]) -> str:
    """'XX в.' (already '20 в.') -> '20 век' in the case its preposition asks for."""
    prev = _prev_word(m.string, m.start())
    prep = _PREP_CASES.get(prev, ())
    case = "p" if prev in ("в", "во", "о", "об", "при") else (prep[0] if prep else "n")
    dot = "." if _SENTENCE_END_RE.match(m.string, m.end()) else ""
    return f"{m.group(1)} {_CENTURY.slot('sg', case)}{dot}"


_RANGE_HYPHEN_RE = re.compile(r"(?<=\d)-(?=\d)")
_COMPOUND_RE = re.compile(r"(?<![\w.,])(\d+)-(?=[а-яё]{4,})", re.IGNORECASE)
_COMPOUND_STEMS = {1: "одно", 90: "девяносто", 100: "сто", 1000: "тысяче"}


def _compound(m: re.Match[str]) -> str:
    """'5-летний' -> 'пятилетний', '25-летие' -> 'двадцатипятилетие'."""
    n = int(m.group(1))
    if n in _COMPOUND_STEMS:
        return _COMPOUND_STEMS[n]
    if n % 10 == 1 and n % 100 != 11 and n > 20:
        return _cardinal(n - 1, "g").replace(" ", "") + "одно"
    return _cardinal(n, "g").replace(" ", "")


def _tidy(text: str) -> str:
    """Collapse whitespace and stray punctuation; repeated until nothing changes."""
    previous = None
    while text != previous:
        previous = text
        text = re.sub(r"\s+", " ", text)
        text = re.sub(r"(?<!\w)-+|-+(?!\w)", ", ", text)  # a hyphen outside a word is a dash
        text = _PUNCT_SPACE_RE.sub(r"\1", text)
        text = _COMMA_RUN_RE.sub(", ", text)
        text = _COMMA_BEFORE_STOP_RE.sub(r"\1", text)
        text = re.sub(r"\.{2,}", lambda m: "…" if len(m.group(0)) > 2 else ".", text)
        text = _LEADING_COMMA_RE.sub(r"\1", text)
        text = _SPACE_AFTER_PUNCT_RE.sub(r"\1 ", text)
        text = re.sub(r"^[ ,;:]+", "", text)
        text = re.sub(r" {2,}", " ", text).strip(" ,;:")
    return text


def normalize(text: str, *, stress: bool = False) -> str:
    """Rewrite Russian text so that a synthesiser only has to read words.

    Numbers take the case and gender their noun and preposition ask for, years and dates become
    ordinals, units and currencies are spelled out, abbreviations are expanded, quotes and control
    characters are dropped, dashes become commas (a pause). Latin text is left for the engine.
    With `stress`, stress marks stay (as U+0301 after the vowel); without, they are dropped.
    """
    text = _clean(text)
    for pattern, replacement in _EARLY_ABBR:
        text = pattern.sub(_dotted(replacement), text)
    text = _SCIENTIFIC_RE.sub(_scientific, text)
    text = _DATE_RE.sub(_date, text)
    text = _DOT_TIME_RE.sub(_dot_time, text)
    text = _TIME_RE.sub(_time, text)
    text = _FRACTION_RE.sub(_fraction, text)
    text = _ABBR_NOUN_RE.sub(_abbr_noun, text)
    text = _PREFIX_CURRENCY_RE.sub(lambda m: f"{m.group(2)}{m.group(3)} {m.group(1)}", text)
    text = _ROMAN_RE.sub(_roman, text)
    text = _PART_RE.sub(_part, text)
    text = _REGNAL_RE.sub(_regnal, text)
    text = _CENTURY_ABBR_RE.sub(_century_abbr, text)
    text = _COMPOUND_RE.sub(_compound, text)
    text = _RANGE_HYPHEN_RE.sub("–", text)
    text = _NUMBER_RE.sub(lambda m: _spell_number(m, m.string), text)
    text = _DIGITS_RE.sub(lambda m: _cardinal(int(m.group(0))) if len(m.group(0)) <= 15
                          else _digits(m.group(0)), text)
    text = _AFTER_MULTIPLIER_RE.sub(_after_multiplier, text)
    for pattern, replacement in _LATE_ABBR:
        text = pattern.sub(_dotted(replacement), text)
    text = _CAPS_RE.sub(_initialism, text)
    text = _LATIN_CAPS_RE.sub(_latin_acronym, text)
    text = _SYMBOLS_RE.sub(lambda m: _SYMBOLS[m.group(0)], text)
    text = _DASH_RE.sub(", ", text)
    text = _tidy(text)
    return text if stress else strip_stress(text)


def has_speakable(text: str) -> bool:
    """True if the normalised text has at least one letter to say."""
    return any(ch.isalpha() for ch in normalize(text))


# ---------------------------------------------------------------------------------------------
# Sentence splitting.

_NO_BREAK_ABBR = {
    "т", "е", "д", "п", "к", "н", "г", "ул", "им", "проф", "акад", "пр", "пл", "стр", "рис",
    "см", "ср", "тел", "св", "напр", "кв", "куб", "обл", "р-н", "пос", "дер", "ок", "ж",
}
_STOP_RE = re.compile(r"[.!?…]+[)\]»\"”]*(?=\s|$)")
_CLAUSE_RE = re.compile(r"[,;:]+(?=\s)")


_NEXT_CHAR_RE = re.compile(r"\s*(\S?)")
_LAST_WORD_RE = re.compile(r"([^\W\d_][\w-]*|\d+)$")
_LOOK_BACK = 80
"""Characters before a stop searched for its word: a window keeps splitting linear in length."""


def _is_break(text: str, m: re.Match[str]) -> bool:
    """A stop ends a sentence unless it closes an initial or an abbreviation mid-sentence."""
    if not m.group(0).startswith("."):
        return True
    nxt = _NEXT_CHAR_RE.match(text, m.end())
    next_char = nxt.group(1) if nxt else ""
    if not next_char:
        return True
    if next_char.islower() or next_char in ",;:":
        return False
    head = text[max(0, m.start() - _LOOK_BACK):m.start()]
    word = _LAST_WORD_RE.search(head)
    if not word:
        return True
    token = word.group(1)
    if len(token) == 1 and token.isupper():
        return False  # an initial: "А. С. Пушкин"
    before = head[:word.start()].rstrip()
    if _fold(token) in ("г", "гг") and before[-1:].isdigit():
        return True  # "в 2026 г. Затем" ends a sentence
    return _fold(token) not in _NO_BREAK_ABBR


def _sentences(text: str) -> list[str]:
    text = _SPACES_RE.sub(" ", text.replace("\n", " ")).strip()
    pieces, start = [], 0
    for m in _STOP_RE.finditer(text):
        if _is_break(text, m):
            pieces.append(text[start:m.end()].strip())
            start = m.end()
    pieces.append(text[start:].strip())
    return [p for p in pieces if p]


def _split_long(sentence: str, max_chars: int) -> list[str]:
    """Cut a long sentence at commas and semicolons, then at spaces, into pieces <= max_chars."""
    if len(sentence) <= max_chars:
        return [sentence]
    clauses, start = [], 0
    for m in _CLAUSE_RE.finditer(sentence):
        clauses.append(sentence[start:m.end()].strip())
        start = m.end()
    clauses.append(sentence[start:].strip())
    units: list[str] = []
    for clause in clauses:
        if len(clause) <= max_chars:
            units.append(clause)
            continue
        current = ""
        for word in clause.split():
            if current and len(current) + 1 + len(word) > max_chars:
                units.append(current)
                current = word
            else:
                current = f"{current} {word}" if current else word
        units.append(current)
    pieces: list[str] = []
    for unit in units:
        if pieces and len(pieces[-1]) + 1 + len(unit) <= max_chars:
            pieces[-1] = f"{pieces[-1]} {unit}"
        elif unit:
            pieces.append(unit)
    return pieces


def split_sentences(text: str, max_chars: int = 300) -> list[str]:
    """Split text into sentences, and long sentences into clause groups of at most `max_chars`.

    Sentences end at . ! ? … but not after initials, mid-sentence abbreviations ("т.е.") or inside
    decimals. A piece is longer than `max_chars` only if one word is; pieces without a letter or
    digit are dropped.
    """
    if max_chars < 1:
        raise ValueError("max_chars must be positive")
    pieces: list[str] = []
    for sentence in _sentences(text):
        pieces.extend(p for p in _split_long(sentence, max_chars) if any(c.isalnum() for c in p))
    return pieces
