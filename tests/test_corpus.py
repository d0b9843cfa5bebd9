"""Corpus in RUSLAN's layout: eSpeak builder, scan verdicts, quarantine, preprocessing, split."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from vestnik.corpus import METADATA_NAME, WAV_DIR
from vestnik.corpus.manifest import scan_corpus
from vestnik.corpus.preprocess import CleanSettings, clean_audio, process_shard, trim_silence
from vestnik.corpus.split import finalize_corpus, split_ids
from vestnik.errors import VestnikError
from vestnik.io import read_tsv

from .workflow_helpers import ROOT, base_config, run_workflow

pytest.importorskip("torch")


def voiced(seconds: float, rate: int, f0: float = 150.0, lead: float = 0.3) -> np.ndarray:
    """A harmonic tone with `lead` seconds of silence before and after it."""
    t = np.arange(int(seconds * rate)) / rate
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.05 * np.sin(2 * np.pi * 3 * t))) / rate
    tone = sum(np.sin(k * phase) / k for k in range(1, 8)) * 0.25
    gap = np.zeros(int(lead * rate))
    return np.concatenate([gap, tone, gap])


def write_wav(path, samples, rate, channels=1):
    data = samples if channels == 1 else np.stack([samples, samples * 0.5], axis=1)
    sf.write(str(path), data, rate, subtype="PCM_16")


def make_bad_corpus(root):
    """Six good utterances plus one of every kind of broken input."""
    wavs = root / WAV_DIR
    wavs.mkdir(parents=True)
    lines = []
    for i in range(1, 7):
        write_wav(wavs / f"{i:06d}.wav", voiced(1.0 + 0.1 * i, 44100, 110 + 15 * i), 44100)
        lines.append(f"{i:06d}|Предложение номер {i}.".encode())
    lines.append("000007|Строка без файла.".encode())
    write_wav(wavs / "000008.wav", voiced(1.0, 44100), 44100)
    (wavs / "000009.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEgarbage-not-a-wav")
    (wavs / "000010.wav").write_bytes(b"")
    lines += ["000009|Испорченный файл.".encode(), "000010|Пустой файл.".encode()]
    write_wav(wavs / "000011.wav", voiced(1.2, 16000), 16000)
    write_wav(wavs / "000012.wav", voiced(1.2, 44100), 44100, channels=2)
    lines += ["000011|Другая частота.".encode(), "000012|Стерео запись.".encode()]
    write_wav(wavs / "000013.wav", voiced(1.0, 44100), 44100)
    lines.append(b"000013|   ")
    lines.append("000002|Повтор идентификатора.".encode())
    write_wav(wavs / "000014.wav", voiced(1.0, 44100), 44100)
    lines.append(b"000014|\xff\xfe \xd0\xbd\xd0")
    write_wav(wavs / "000015.wav", voiced(1.0, 44100), 44100)
    lines.append("000015 строка без разделителя".encode())
    write_wav(wavs / "000016.wav", np.zeros(44100), 44100)
    write_wav(wavs / "000017.wav", voiced(0.2, 44100), 44100)
    lines += ["000016|Тишина.".encode(), "000017|Коротко.".encode()]
    (root / METADATA_NAME).write_bytes(b"\n".join(lines) + b"\n\n")
    return lines


EXPECTED = {
    # (line or wav id) -> (status, reason prefix)
    "000007": ("rejected", "no wav file for this row"),
    "000008": ("rejected", "no metadata row"),
    "000009": ("rejected", "unreadable wav"),
    "000010": ("rejected", "empty wav file (0 bytes)"),
    "000011": ("repaired", "sample rate 16000 Hz instead of 44100 (resampled)"),
    "000012": ("repaired", "2 channels (downmixed)"),
    "000013": ("rejected", "empty text"),
    "000014": ("rejected", "line is not valid UTF-8"),
    "000016": ("rejected", "audio is silent"),
    "000017": ("rejected", "too short after trimming"),
}


def prepare(tmp_path, shards=2, val_size=2):
    root = tmp_path / "corpus"
    make_bad_corpus(root)
    data = tmp_path / "data"
    scan_corpus(root, data / "scan.tsv", shards)
    dirs = [data / "shards" / str(k) for k in range(shards)]
    for k, folder in enumerate(dirs):
        process_shard(root, data / "scan.tsv", k, folder, CleanSettings.from_config())
    summary = finalize_corpus(data / "scan.tsv", dirs, data, val_size, seed=7)
    return root, data, summary


def test_every_bad_input_is_quarantined_with_its_reason(tmp_path):
    root, data, summary = prepare(tmp_path)
    manifest = read_tsv(data / "manifest.tsv")
    rejected = read_tsv(data / "rejected.tsv")

    wavs = {p.name for p in (root / WAV_DIR).iterdir()}
    assert wavs <= {row["source_wav"].split("/")[-1] for row in manifest}
    metadata_lines = [x for x in (root / METADATA_NAME).read_bytes().split(b"\n") if x.strip()]
    assert len([r for r in manifest if r["line"]]) == len(metadata_lines)

    by_id = {}
    for row in rejected:
        by_id.setdefault(row["id"], []).append(row)
    for ident, (status, reason) in EXPECTED.items():
        rows = by_id[ident]
        assert [r for r in rows if r["status"] == status and r["reason"].startswith(reason)], rows
    duplicate = [r for r in by_id["000002"] if r["reason"].startswith("duplicate id")]
    assert duplicate and duplicate[0]["text"] == "Повтор идентификатора."
    no_separator = [r for r in rejected if r["reason"] == "no '|' separator"]
    assert no_separator and "без разделителя" in no_separator[0]["text"]
    orphan = [r for r in rejected if r["id"] == "000015"]
    assert orphan and orphan[0]["reason"] == "no metadata row"

    usable = {f"{i:06d}" for i in range(1, 7)} | {"000011", "000012"}
    split = {r["id"] for r in read_tsv(data / "train.tsv")} | {
        r["id"] for r in read_tsv(data / "val.tsv")}
    assert split == usable
    assert summary["ok"] == 6 and summary["repaired"] == 2
    assert summary["rejected"] == len(manifest) - 8
    assert summary["rejected_by_reason"]["no metadata row"] == 2
    assert json.loads((data / "summary.json").read_text()) == summary
    assert summary["train"] == 6 and summary["val"] == 2


def test_repaired_audio_is_resampled_and_downmixed(tmp_path):
    _root, data, _summary = prepare(tmp_path)
    rows = {r["id"]: r for r in read_tsv(data / "manifest.tsv") if r["wav"]}
    for ident in ("000011", "000012", "000001"):
        info = sf.info(rows[ident]["wav"])
        assert (info.samplerate, info.channels, info.subtype) == (22050, 1, "PCM_16")
        audio, _ = sf.read(rows[ident]["wav"])
        assert np.max(np.abs(audio)) == pytest.approx(0.95, abs=2e-4)
        mel = np.load(rows[ident]["mel"])
        assert mel.shape == (80, int(rows[ident]["frames"])) and mel.dtype == np.float32
        assert mel.shape[1] == audio.size // 256
    # 0.3 s of silence on each side trimmed to the 0.05 s margin (plus up to half a frame)
    assert 1.2 + 0.1 <= float(rows["000011"]["seconds"]) < 1.2 + 0.1 + 0.06


def test_preprocessing_is_bitwise_reproducible(tmp_path):
    root, data, _summary = prepare(tmp_path, shards=1)
    first = {p.name: p.read_bytes() for p in (data / "shards" / "0").rglob("*") if p.is_file()}
    process_shard(root, data / "scan.tsv", 0, tmp_path / "again", CleanSettings.from_config())
    process_shard(root, data / "scan.tsv", 0, data / "shards" / "0", CleanSettings.from_config())
    again = {p.name: p.read_bytes() for p in (tmp_path / "again").rglob("*") if p.is_file()}
    rerun = {p.name: p.read_bytes() for p in (data / "shards" / "0").rglob("*") if p.is_file()}
    assert rerun == first
    assert set(again) == set(first)
    for name, content in first.items():
        if name != "items.tsv":  # holds the output folder's path
            assert again[name] == content, name


def test_split_is_seeded_and_order_free():
    ids = [f"{i:06d}" for i in range(1, 101)]
    train, val = split_ids(ids, 10, seed=1)
    assert len(val) == 10 and len(train) == 90 and not set(train) & set(val)
    assert split_ids(list(reversed(ids)), 10, seed=1) == (train, val)
    assert split_ids(ids, 10, seed=2)[1] != val
    assert split_ids(ids[:3], 10, seed=1)[0]  # training always keeps at least one
    with pytest.raises(VestnikError, match="at least 2"):
        split_ids(ids[:1], 1, seed=1)


def test_trim_and_clean_edge_cases():
    rate = 22050
    audio = voiced(1.0, rate, lead=0.5)
    trimmed = trim_silence(audio, rate, 40.0, 0.05)
    assert 1.0 < trimmed.size / rate < 1.2
    with pytest.raises(Exception, match="silent"):
        clean_audio(np.zeros((rate, 1)), rate, CleanSettings.from_config())
    with pytest.raises(Exception, match="NaN"):
        clean_audio(np.full((rate, 1), np.nan), rate, CleanSettings.from_config())


def test_corpus_modules_do_not_import_torch():
    code = ("import sys, vestnik.corpus.manifest, vestnik.corpus.split, vestnik.corpus.preprocess, "
            "vestnik.corpus.espeak_corpus, vestnik.vocoder.cli; "
            "sys.exit('torch' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    assert subprocess.run([sys.executable, "-c", code], env=env).returncode == 0


def test_missing_corpus_is_a_clear_error(tmp_path):
    with pytest.raises(VestnikError, match="metadata not found"):
        scan_corpus(tmp_path, tmp_path / "scan.tsv", 1)


def test_espeak_corpus_in_ruslan_layout(tmp_path):
    from vestnik.corpus.espeak_corpus import build_espeak_corpus

    sentences = tmp_path / "sentences.txt"
    sentences.write_text("Первое предложение.\n\nВторое, чуть длиннее.\nТретье: сорок два.\n",
                         encoding="utf-8")
    assert build_espeak_corpus(sentences, tmp_path / "corpus") == 3
    lines = (tmp_path / "corpus" / METADATA_NAME).read_text(encoding="utf-8").splitlines()
    assert lines == ["000001|Первое предложение.", "000002|Второе, чуть длиннее.",
                     "000003|Третье: сорок два."]
    for ident in ("000001", "000002", "000003"):
        info = sf.info(str(tmp_path / "corpus" / WAV_DIR / f"{ident}.wav"))
        assert (info.samplerate, info.channels, info.subtype) == (44100, 1, "PCM_16")
        assert info.duration > 0.5


@pytest.mark.slow
def test_data_rules_survive_a_bad_corpus(tmp_path):
    """Through snakemake: the broken corpus is preprocessed in parallel shards, nothing fails."""
    make_bad_corpus(tmp_path / "corpus")
    config = base_config({"greeting": {"text": "Привет."}})
    config["ruslan"].update(source="path", root=str(tmp_path / "corpus"), shards=3, val_size=2,
                            espeak_sentences=str(ROOT / "resources/texts/corpus_sentences.txt"))
    result = run_workflow(tmp_path, config, "results/data/ruslan/train.tsv", cores=2)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "results/data/ruslan/summary.json").read_text())
    assert (summary["ok"], summary["repaired"], summary["train"]) == (6, 2, 6)
    assert len(list((tmp_path / "results/data/ruslan/shards").iterdir())) == 3
    assert "rejected" in (tmp_path / "logs/data/corpus_split.log").read_text()


def test_real_corpus_faults_are_quarantined_or_normalised(tmp_path):
    """Faults met in real corpora: misplaced stress marks, clipping, too low a rate; digits
    are spelled by the normaliser, and 16 kHz files need no `source_rate`."""
    root = tmp_path / "corpus"
    wavs = root / WAV_DIR
    wavs.mkdir(parents=True)
    lines = []
    for i in range(1, 5):
        write_wav(wavs / f"{i:06d}.wav", voiced(1.0 + 0.1 * i, 16000, 120 + 10 * i), 16000)
        lines.append(f"{i:06d}|Вол+ос и з+амок номер {i}.")
    texts = {"000005": "Слово с ударением на согласной: +дом.",
             "000006": "Знак в конце слова+ тоже ошибка.",
             "000007": "Перегруженная запись.", "000008": "Узкая полоса."}
    for ident, text in texts.items():
        write_wav(wavs / f"{ident}.wav", voiced(1.2, 16000), 16000)
        lines.append(f"{ident}|{text}")
    loud = np.clip(voiced(1.2, 16000) * 8, -1, 1)
    write_wav(wavs / "000007.wav", loud, 16000)
    write_wav(wavs / "000008.wav", voiced(1.2, 8000), 8000)
    (root / METADATA_NAME).write_text("\n".join(lines) + "\n", encoding="utf-8")
    rows = {r["id"]: r for r in scan_corpus(root, tmp_path / "scan.tsv", 1)}
    assert [rows[f"{i:06d}"]["status"] for i in range(1, 5)] == ["ok"] * 4
    assert rows["000005"]["reason"].startswith("stress mark '+' before the consonant 'д'")
    assert rows["000006"]["reason"].startswith("stress mark '+' at a word's end")
    assert rows["000008"]["reason"].startswith("sample rate 8000 Hz is below 16000 Hz")
    items = {i["id"]: i for i in process_shard(root, tmp_path / "scan.tsv", 0,
                                                tmp_path / "shard", CleanSettings.from_config())}
    assert items["000007"]["status"] == "rejected"
    assert items["000007"]["reason"].startswith("clipped (")
    assert items["000001"]["status"] == "ok"
    # the digits of a kept transcript reach training spelled out (the normaliser's code)
    from vestnik.acoustic.data import text_ids

    assert (text_ids(lines[3].split("|")[1], False)[1].symbols
            == text_ids("Вол+ос и з+амок номер четыре.", False)[1].symbols)


def test_corpus_root_follows_the_source():
    from vestnik.corpus import SOURCES, corpus_root

    assert corpus_root({"source": "espeak"}) == SOURCES["espeak"]
    assert corpus_root({"source": "festvox-ru", "root": "x"}) == SOURCES["festvox-ru"]
    assert corpus_root({"source": "path", "root": "/data/ruslan"}) == "/data/ruslan"
    with pytest.raises(VestnikError, match="ruslan.root is not set"):
        corpus_root({"source": "path", "root": None})


def test_festvox_fetch_without_apt_says_what_to_do(tmp_path, monkeypatch):
    from vestnik.corpus import festvox

    monkeypatch.setattr(festvox.shutil, "which", lambda name: None)
    with pytest.raises(VestnikError, match="festvox_root"):
        festvox.download(tmp_path / "download")
    with pytest.raises(VestnikError, match="no festvox-ru voice here"):
        festvox.convert(tmp_path, tmp_path / "out")


def test_festvox_converts_to_the_ruslan_layout_with_labels(festvox_package, tmp_path):
    """The real package: 620 recordings at 16 kHz, marks kept, phone labels beside them."""
    from vestnik.corpus import LABEL_DIR
    from vestnik.corpus.festvox import NOTICE_NAME, convert, read_labels

    counts = convert(festvox_package, tmp_path / "corpus")
    assert counts == {"lines": 620, "recordings": 620}
    root = tmp_path / "corpus"
    lines = (root / METADATA_NAME).read_text(encoding="utf-8").splitlines()
    assert lines[1].startswith("ru_0002|Она завела, прядь волнистых вол+ос за ухо")
    assert sum("+" in line for line in lines) == 132
    assert "BSD" in (root / NOTICE_NAME).read_text(encoding="utf-8", errors="replace")
    phones = read_labels(root / LABEL_DIR / "ru_0001.lab")
    assert phones[0] == (0.0, 0.342, "pau") and phones[1][2] == "k"
    assert all(a[1] == b[0] for a, b in zip(phones, phones[1:], strict=False))
    rows = scan_corpus(root, tmp_path / "scan.tsv", 2)
    assert {r["status"] for r in rows} == {"ok"} and len(rows) == 620
    assert {r["sample_rate"] for r in rows} == {16000}


def _check_festvox_layout(root):
    """The RUSLAN layout the rule festvox_corpus leaves: every recording, its transcript with
    its stress marks, its phone labels, and the package's licence notice."""
    from vestnik.corpus import LABEL_DIR
    from vestnik.corpus.festvox import NOTICE_NAME, read_labels

    lines = (root / METADATA_NAME).read_text(encoding="utf-8").splitlines()
    assert len(lines) == 620 and lines[0].startswith("ru_0001|")
    assert sum("+" in line for line in lines) == 132
    assert len(list((root / WAV_DIR).glob("ru_*.wav"))) == 620
    assert sf.info(str(root / WAV_DIR / "ru_0620.wav")).samplerate == 16000
    labels = sorted((root / LABEL_DIR).glob("ru_*.lab"))
    assert len(labels) == 620
    phones = read_labels(labels[-1])
    assert phones[0][2] == "pau" and phones[-1][2] == "pau" and len(phones) > 10
    notice = (root / NOTICE_NAME).read_text(encoding="utf-8", errors="replace")
    assert "BSD" in notice and "Shmyrev" in notice


def _festvox_config(**ruslan):
    config = base_config({})
    config["ruslan"] = {**config["ruslan"], "source": "festvox-ru", **ruslan}
    return config


@pytest.mark.slow
def test_rule_festvox_corpus_converts_a_given_unpacked_package(festvox_package, tmp_path):
    from vestnik import layout

    result = run_workflow(tmp_path, _festvox_config(festvox_root=str(festvox_package)),
                          f"{layout.FESTVOX_CORPUS}/{METADATA_NAME}")
    assert result.returncode == 0, result.stderr[-3000:]
    _check_festvox_layout(tmp_path / layout.FESTVOX_CORPUS)
    assert not (tmp_path / layout.FESTVOX_DOWNLOAD).exists()


@pytest.mark.slow
def test_rule_festvox_corpus_unpacks_the_package_into_the_relative_results_folder(
        festvox_package, tmp_path):
    """No festvox_root: the rule fetches and unpacks into results/ (a path relative to the
    working directory, as the rule gives it). A package file cached beside the fixture's copy
    is placed there first (apt-get download would fetch the same 179 MB file again); without
    one, apt-get downloads it."""
    import shutil

    from vestnik import layout

    if shutil.which("dpkg-deb") is None:
        pytest.skip("unpacking festvox-ru needs dpkg-deb (Debian/Ubuntu)")
    download = tmp_path / layout.FESTVOX_DOWNLOAD
    cached = sorted(festvox_package.parent.glob("festvox-ru_*.deb"))
    if cached:
        download.mkdir(parents=True)
        (download / cached[-1].name).symlink_to(cached[-1])
    elif shutil.which("apt-get") is None or subprocess.run(
            ["apt-get", "download", "--print-uris", "festvox-ru"], capture_output=True,
            check=False).returncode != 0:
        pytest.skip("no cached festvox-ru package and apt cannot fetch one")
    result = run_workflow(tmp_path, _festvox_config(festvox_root=None),
                          f"{layout.FESTVOX_CORPUS}/{METADATA_NAME}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (download / "unpacked" / "usr" / "share" / "doc" / "festvox-ru").is_dir()
    _check_festvox_layout(tmp_path / layout.FESTVOX_CORPUS)
