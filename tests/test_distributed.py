"""Training on two processes (torchrun, gloo on the CPU) against one process, same global batch.

Each rank takes half of every batch; gradients are averaged over the ranks (the acoustic
model's per-frame and per-token means weighted by each rank's share), which is the arithmetic
of one process up to float rounding. Dropout is off in the acoustic block, as ranks draw other
masks than one process does. Stated tolerance, over the first 50 steps: every logged training
mel L1 and every validation mel L1 within 5% of the single-process run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from vestnik.acoustic.synth import NeuralVoice  # noqa: E402
from vestnik.acoustic.train import train_acoustic  # noqa: E402
from vestnik.errors import VestnikError  # noqa: E402
from vestnik.training import CsvLog, load_state  # noqa: E402
from vestnik.vocoder.train import train_vocoder  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = 0.05
VOCODER = {
    "generator": {"base": "v3", "upsample_initial_channel": 32}, "discriminator_width": 0.0625,
    "segment": 2048, "batch_size": 2, "accumulation": 1, "lr_generator": 2e-3,
    "lr_discriminator": 2e-3, "steps": 50, "log_interval": 5, "val_interval": 25,
    "checkpoint_interval": 25, "val_items": 2, "samples": 1, "device": "cpu",
}
ACOUSTIC = {
    "model": {"hidden": 64, "prenet_layers": 1, "encoder_layers": 1, "ffn_hidden": 128,
              "duration_hidden": 64, "decoder_hidden": 64, "decoder_layers": 2,
              "dropout": 0.0},
    "batch_size": 4, "lr": 0.005, "warmup_steps": 10, "steps": 50, "log_interval": 5,
    "val_interval": 25, "checkpoint_interval": 25, "plots": 1, "stats_items": 100,
    "device": "cpu",
}

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def corpus(espeak_corpus):
    """Twelve utterances: ten for training, two for validation."""
    return espeak_corpus(12, 2, 1)


def curve(folder: Path, column: str) -> dict[int, float]:
    rows = CsvLog(folder / "train_log.csv", []).read()
    return {int(r["step"]): float(r[column]) for r in rows if r.get(column)}


def assert_follows(single: Path, ranks: Path) -> None:
    for column in ("mel_l1", "val_mel_l1"):
        expected, got = curve(single, column), curve(ranks, column)
        assert sorted(got) == sorted(expected), column
        assert all(abs(got[s] - expected[s]) <= TOLERANCE * expected[s] for s in expected), (
            column, expected, got)


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    """Both models trained on one process and on two: {(kind, world_size): experiment folder}."""
    base = tmp_path_factory.mktemp("ranks")
    data = corpus / "train.tsv", corpus / "val.tsv"
    folders = {}
    for world in (1, 2):
        for kind, train, block in (("vocoder", train_vocoder, VOCODER),
                                   ("acoustic", train_acoustic, ACOUSTIC)):
            folders[kind, world] = base / f"{kind}_{world}"
            # one thread per rank: spare cores are few, and idle OpenMP threads spin
            train(kind, {**block, "world_size": world}, *data, folders[kind, world],
                  threads=world)
    return folders


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["vocoder", "acoustic"])
def test_two_ranks_follow_one_process(trained, kind):
    assert_follows(trained[kind, 1], trained[kind, 2])
    folder = trained[kind, 2]
    assert sorted(p.name for p in (folder / "checkpoints").glob("step_*.pt")) == [
        "step_000000025.pt", "step_000000050.pt"]
    state = load_state(folder / "checkpoints" / "step_000000050.pt")
    assert len(state["rng_ranks"]) == 2
    assert not any(key.startswith("module.") for part in ("generator", "mpd", "model")
                   if part in state for key in state[part])
    assert (folder / "provenance.json").is_file() and (folder / "curves.png").is_file()


@pytest.mark.slow
def test_models_exported_by_two_ranks_speak(trained, tmp_path):
    single = {k: load_state(trained[k, 1] / n) for k, n in (("vocoder", "generator.pt"),
                                                            ("acoustic", "model.pt"))}
    ranks = {k: load_state(trained[k, 2] / n) for k, n in (("vocoder", "generator.pt"),
                                                           ("acoustic", "model.pt"))}
    for kind in single:
        assert single[kind].keys() == ranks[kind].keys()
        assert ranks[kind]["format"] == single[kind]["format"]
    voice = NeuralVoice(trained["acoustic", 2] / "model.pt", trained["vocoder", 2] / "generator.pt",
                        device="cpu")
    speech = voice.synthesize("Привет, как дела?")
    assert speech.samples.size > 0.3 * voice.sample_rate
    assert np.isfinite(speech.samples).all() and float(np.abs(speech.samples).max()) > 1e-3


def test_bad_settings_are_refused_before_training(tmp_path):
    data = tmp_path / "train.tsv", tmp_path / "val.tsv"  # refused before they are read
    with pytest.raises(VestnikError, match="'odd'.*batch_size 3 does not divide over world_size 2"):
        train_vocoder("odd", {**VOCODER, "batch_size": 3, "world_size": 2}, *data, tmp_path / "a")
    if not torch.cuda.is_available():
        with pytest.raises(VestnikError, match="'gpus'.*no CUDA device"):
            train_acoustic("gpus", {**ACOUSTIC, "device": "cuda", "world_size": 2}, *data,
                           tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.slow
def test_a_killed_rank_stops_the_run_and_any_world_size_resumes(corpus, tmp_path):
    block = {**VOCODER, "steps": 12, "checkpoint_interval": 4, "val_interval": 12,
             "world_size": 2, "export": "last"}
    out, log = tmp_path / "run", tmp_path / "train.log"
    code = ("import json, sys; from vestnik.runner import setup_logging; "
            "from vestnik.vocoder.train import train_vocoder; setup_logging(sys.argv[5]); "
            "train_vocoder('k', json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], "
            "threads=2)")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-c", code, json.dumps(block), str(corpus / "train.tsv"),
         str(corpus / "val.tsv"), str(out), str(log)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not list((out / "checkpoints").glob("step_*.pt")):
        assert proc.poll() is None and time.time() < deadline, log.read_text()[-3000:]
        time.sleep(0.05)
    ranks = [int(pid) for pid in subprocess.run(
        ["pgrep", "-f", "vestnik.distributed"], capture_output=True, text=True).stdout.split()
        if _descends_from(int(pid), proc.pid) and b"torch.distributed.run" not in
        Path(f"/proc/{pid}/cmdline").read_bytes()]
    assert len(ranks) == 2, ranks
    os.kill(ranks[-1], signal.SIGKILL)
    _, errors = proc.communicate(timeout=120)  # the other rank is stopped, the run fails
    assert proc.returncode == 1 and "training ranks failed" in errors, errors[-2000:]
    assert "Signal 9 (SIGKILL) received" in log.read_text()  # torchrun reports the rank
    assert all(not _alive(pid) for pid in ranks)
    killed_at = max(int(p.stem.split("_")[1]) for p in (out / "checkpoints").glob("step_*.pt"))
    assert killed_at < 12 and not (out / "generator.pt").exists()

    generator = train_vocoder("k", {**block, "world_size": 1}, corpus / "train.tsv",
                              corpus / "val.tsv", out, threads=1)
    exported = load_state(generator)
    assert exported["steps"] == exported["step"] == 12
    assert not (out / "superseded").exists()
    logged = [int(r["step"]) for r in CsvLog(out / "train_log.csv", []).read() if r["loss_g"]]
    assert logged == [5, 10, 12]


def _parent(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[1])


def _descends_from(pid: int, ancestor: int) -> bool:
    try:
        while pid > 1:
            pid = _parent(pid)
            if pid == ancestor:
                return True
    except OSError:
        return False
    return False


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
