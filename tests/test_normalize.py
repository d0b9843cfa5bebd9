"""Russian normalisation: numbers agree with their nouns, units and abbreviations are spelled."""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vestnik.text.normalize import has_speakable, normalize, split_sentences

from .workflow_helpers import CASPIAN


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 тысяча", "одна тысяча"),
        ("2 тысячи", "две тысячи"),
        ("21 километр", "двадцать один километр"),
        ("11 километров", "одиннадцать километров"),
        ("380 километров", "триста восемьдесят километров"),
        ("44 миллиона долларов", "сорок четыре миллиона долларов"),
        ("1000 рублей", "тысяча рублей"),
        ("21 страна", "двадцать одна страна"),
        ("2 машины", "две машины"),
        ("22 новые машины", "двадцать две новые машины"),
        ("1 новая машина", "одна новая машина"),
        ("на 1 тонну", "на одну тонну"),
        ("в 21 стране", "в двадцати одной стране"),
        ("в 3 странах", "в трёх странах"),
        ("из 10 стран", "из десяти стран"),
        ("около 3 часов", "около трёх часов"),
        ("с 5 до 7 километров", "с пяти до семи километров"),
        ("о 5 процентах", "о пяти процентах"),
        ("за 2 года", "за два года"),
        ("5 лет", "пять лет"),
        ("1 000 000 человек", "один миллион человек"),
        ("007", "ноль ноль семь"),
    ],
)
def test_cardinals_agree_with_their_noun(text, expected):
    assert normalize(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("в 2026 году", "в две тысячи двадцать шестом году"),
        ("в октябре 2026 года", "в октябре две тысячи двадцать шестого года"),
        ("2026 год", "две тысячи двадцать шестой год"),
        ("к 2030 году", "к две тысячи тридцатому году"),
        ("В 1812 году", "В тысяча восемьсот двенадцатом году"),
        ("с 2020 по 2026 год", "с две тысячи двадцатого по две тысячи двадцать шестой год"),
        ("в 2026 г. Затем", "в две тысячи двадцать шестом году. Затем"),
        ("в 1990-х годах", "в тысяча девятьсот девяностых годах"),
        ("в 21 году", "в двадцать первом году"),
        ("в октябре 2026", "в октябре две тысячи двадцать шестого года"),
        ("1 января 2026 г.", "первого января две тысячи двадцать шестого года."),
        ("01.10.2026", "первого октября две тысячи двадцать шестого года"),
        ("на 1 мая", "на первое мая"),
        ("XXI век", "двадцать первый век"),
        ("в XX веке", "в двадцатом веке"),
        ("в XX в.", "в двадцатом веке."),
        ("5-й этаж", "пятый этаж"),
        ("21-го века", "двадцать первого века"),
        ("на 2-х этажах", "на двух этажах"),
        ("5-летний юбилей", "пятилетний юбилей"),
    ],
)
def test_years_dates_and_ordinals(text, expected):
    assert normalize(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3,5", "три целых пять десятых"),
        ("1,01", "одна целая одна сотая"),
        ("0,25", "ноль целых двадцать пять сотых"),
        ("Рост 3.5 процента", "Рост три целых пять десятых процента"),
        ("2,5 т", "две целых пять десятых тонны"),
        ("15%", "пятнадцать процентов"),
        ("1%", "один процент"),
        ("2%", "два процента"),
        ("5,5%", "пять целых пять десятых процента"),
        ("на 15%", "на пятнадцать процентов"),
        ("до 21%", "до двадцати одного процента"),
        ("$44 млн", "сорок четыре миллиона долларов"),
        ("€3,5 млн", "три целых пять десятых миллиона евро"),
        ("100 ₽", "сто рублей"),
        ("5 руб. 50 коп.", "пять рублей пятьдесят копеек."),
        ("10 долл. США", "десять долларов сэ-шэ-а"),
        ("более 5 тыс. человек", "более пяти тысяч человек"),
        ("3 млрд рублей", "три миллиарда рублей"),
    ],
)
def test_decimals_percent_and_currency(text, expected):
    assert normalize(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5 км", "пять километров"),
        ("2 км", "два километра"),
        ("в 5 км от города", "в пяти километрах от города"),
        ("1 кг", "один килограмм"),
        ("3 г сахара", "три грамма сахара"),
        ("в 5 м от дома", "в пяти метрах от дома"),
        ("в 10 ч утра", "в десять часов утра"),
        ("за 30 мин", "за тридцать минут"),
        ("через 45 с", "через сорок пять секунд"),
        ("5 с половиной", "пять с половиной"),
        ("100 км/ч", "сто километров в час"),
        ("-5 °C", "минус пять градусов Цельсия"),
        ("№ 5", "номер пять"),
        ("и т.д. Потом т.е. снова", "и так далее. Потом то есть снова"),
        ("США и РФ", "сэ-шэ-а и эр-эф"),
        ("ЕС и ООН", "е-эс и оон"),
        ("ВВП и НАТО", "вэ-вэ-пэ и нато"),
        ("г. Москва", "город Москва"),
    ],
)
def test_units_and_abbreviations(text, expected):
    assert normalize(text) == expected


def test_caspian_text_has_no_digits_left():
    out = normalize(CASPIAN)
    assert not re.search(r"\d", out)
    assert "триста восемьдесят километров" in out
    assert "сорок четыре миллиона долларов сэ-шэ-а" in out
    assert "в октябре две тысячи двадцать шестого года" in out
    assert "от Азербайджана, Азертелеком" in out
    assert "волоконно-оптической" in out
    assert "Протяжённость" in out


def test_quotes_dashes_whitespace_and_control_characters():
    text = "«Цитата»  и „ещё“ \"так\" — тире – и дефис-слово\x00\x07\u200b\tконец"
    assert normalize(text) == "Цитата и ещё так, тире, и дефис-слово конец"


def test_yo_is_kept_and_composed():
    assert normalize("Ёлка и елка") == "Ёлка и елка"
    assert normalize("е\u0308ж") == "ёж"  # е + combining diaeresis
    assert normalize("мно\u0301го") == "много"  # stress accent dropped


def test_latin_is_kept_for_the_engine():
    assert normalize("Apple и Samsung") == "Apple и Samsung"


def test_paragraph_break_ends_a_heading():
    assert split_sentences(normalize("Заголовок\n\nТекст статьи.")) == [
        "Заголовок.",
        "Текст статьи.",
    ]


def test_split_sentences_respects_abbreviations_initials_and_decimals():
    text = "Пушкин А. С. родился в Москве. Это т.е. пример! Правда? Да… Число 3.5 и 2,5. Конец"
    assert split_sentences(text) == [
        "Пушкин А. С. родился в Москве.",
        "Это т.е. пример!",
        "Правда?",
        "Да…",
        "Число 3.5 и 2,5.",
        "Конец",
    ]


def test_split_sentences_cuts_long_sentences_at_clauses():
    text = "Раз, два, три, четыре, пять, вышел зайчик погулять; вдруг охотник выбегает."
    pieces = split_sentences(text, max_chars=30)
    assert pieces == ["Раз, два, три, четыре, пять,", "вышел зайчик погулять;",
                      "вдруг охотник выбегает."]
    assert all(len(p) <= 30 for p in pieces)


def test_split_sentences_falls_back_to_words_and_drops_empty_pieces():
    pieces = split_sentences("слово " * 50, max_chars=20)
    assert all(0 < len(p) <= 20 for p in pieces)
    assert " ".join(pieces).split() == ["слово"] * 50
    assert split_sentences("  . . ") == []
    assert split_sentences("") == []


def test_caspian_splits_into_five_sentences():
    pieces = split_sentences(normalize(CASPIAN))
    assert len(pieces) == 5
    assert pieces[2] == "Протяжённость кабеля составляет триста восемьдесят километров."


def test_has_speakable():
    assert has_speakable("42")
    assert has_speakable("Hello")
    assert not has_speakable("")
    assert not has_speakable(" ... — !? «» ")


_PIECES = st.sampled_from(
    list("0123456789 ,.-–—%$€₽:;!?«»\"'()/абвгдеёжзАБВСША") + ["км", "г.", "тыс.", "млн", " в ",
    " на ", " до ", "года", "году", " т.е. ", "XX", " век", "-й", "-х", "\n\n", "\t", "\x00"]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_PIECES, max_size=25).map("".join))
def test_any_text_normalises_to_digit_free_tidy_text(text):
    out = normalize(text)
    assert not re.search(r"\d", out)
    assert out == out.strip() and "  " not in out and "\n" not in out
    assert all(piece.strip() for piece in split_sentences(out, 40))


@pytest.mark.parametrize(
    ("text", "kept", "dropped"),
    [
        ("вол+ос", "воло\u0301с", "волос"),
        ("+Окна", "О\u0301кна", "Окна"),
        ("за\u0301мок", "за\u0301мок", "замок"),
        ("з+амок и зам+ок", "за\u0301мок и замо\u0301к", "замок и замок"),
        ("мно\u0301г\u0301о", "мно\u0301го", "много"),  # a mark after a consonant is dropped
        ("сл+ово+ х+лоп", "сло\u0301во хлоп", "слово хлоп"),  # misplaced marks are dropped
        ("гр+я\u0301ды", "гря\u0301ды", "гряды"),  # one mark per word
        ("2+2", "два плюс два", "два плюс два"),  # arithmetic stays read
        ("+5 °C", "плюс пять градусов Цельсия", "плюс пять градусов Цельсия"),
        ("C++", "C плюс плюс", "C плюс плюс"),
    ],
)
def test_stress_marks_are_kept_on_request_and_never_read(text, kept, dropped):
    assert normalize(text, stress=True) == kept
    assert normalize(text) == dropped


def test_control_characters_inside_a_word_do_not_split_it():
    assert normalize("при\x00вет, ми\x1bр\x07 конец") == "привет, мир конец"
    assert normalize("слово\x00 слово") == "слово слово"
    assert normalize("при\tвет") == "при вет"  # a tab is a space


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1e10", "десять в степени десять"),
        ("1E+6 раз", "десять в степени шесть раз"),
        ("2,5e-3", "две целых пять десятых умножить на десять в степени минус три"),
    ],
)
def test_scientific_notation_reads_as_a_number(text, expected):
    assert normalize(text) == expected
