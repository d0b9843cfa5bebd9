"""Fixtures shared by several test modules."""

from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def torch_one_thread():
    """Small convolutions run fastest, and steadiest on a busy machine, on one thread; the
    suite's thread count is restored after the module."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def no_cuda(monkeypatch):
    """torch sees no CUDA device, so the CPU fallbacks are checked on a GPU machine too."""
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


SENTENCES = Path(__file__).resolve().parents[1] / "resources" / "texts" / "corpus_sentences.txt"
SPOKEN = 30
"""Sentences spoken once per session; every corpus the tests ask for is a prefix of them."""


@pytest.fixture(scope="session")
def espeak_corpus(tmp_path_factory):
    """`corpus(count, val_size, seed)`: the folder of train.tsv and val.tsv of a preprocessed
    eSpeak corpus of the first `count` sentences, split as the workflow splits.

    eSpeak speaks the sentences once per session; each (count, val_size, seed) is preprocessed
    once, from links to those recordings.
    """
    from vestnik.corpus.espeak_corpus import METADATA_NAME, WAV_DIR, build_espeak_corpus
    from vestnik.corpus.manifest import scan_corpus
    from vestnik.corpus.preprocess import CleanSettings, process_shard
    from vestnik.corpus.split import finalize_corpus

    spoken = tmp_path_factory.mktemp("espeak_spoken")
    lines = SENTENCES.read_text(encoding="utf-8").splitlines()[:SPOKEN]
    (spoken / "sentences.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    build_espeak_corpus(spoken / "sentences.txt", spoken / "ruslan")
    metadata = (spoken / "ruslan" / METADATA_NAME).read_text(encoding="utf-8").splitlines()
    built: dict[tuple, Path] = {}

    def corpus(count: int, val_size: int, seed: int) -> Path:
        key = (count, val_size, seed)
        if key not in built:
            assert count <= len(metadata)
            base = tmp_path_factory.mktemp(f"espeak_corpus_{count}")
            root = base / "ruslan"
            (root / WAV_DIR).mkdir(parents=True)
            (root / METADATA_NAME).write_text("\n".join(metadata[:count]) + "\n", "utf-8")
            for line in metadata[:count]:
                name = line.split("|", 1)[0] + ".wav"
                (root / WAV_DIR / name).symlink_to(spoken / "ruslan" / WAV_DIR / name)
            data = base / "data"
            scan_corpus(root, data / "scan.tsv", 1)
            process_shard(root, data / "scan.tsv", 0, data / "shards" / "0",
                          CleanSettings.from_config())
            finalize_corpus(data / "scan.tsv", [data / "shards" / "0"], data, val_size, seed)
            built[key] = data
        return built[key]

    return corpus

@pytest.fixture(scope="session")
def festvox_package():
    """The unpacked festvox-ru package (real Russian speech), fetched once into a cache folder.

    VESTNIK_FESTVOX_ROOT may name an unpacked copy; otherwise `apt-get download` fills
    ~/.cache/vestnik/festvox-ru (never the repository). Skipped only where apt is missing.
    """
    import os
    import shutil
    import subprocess
    from pathlib import Path

    from vestnik.corpus import festvox
    from vestnik.errors import VestnikError

    if os.environ.get("VESTNIK_FESTVOX_ROOT"):
        return Path(os.environ["VESTNIK_FESTVOX_ROOT"])
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vestnik/festvox-ru"
    if shutil.which("apt-get") is None and not (cache / "unpacked").is_dir():
        pytest.skip("festvox-ru needs apt-get (Debian/Ubuntu) or VESTNIK_FESTVOX_ROOT")
    try:
        return festvox.download(cache)
    except VestnikError:
        if os.geteuid() != 0:
            raise
        subprocess.run(["apt-get", "update"], capture_output=True, check=False)
        return festvox.download(cache)
