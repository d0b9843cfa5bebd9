"""Training under kills and reruns: a killed `snakemake` resumes training from its last complete
checkpoint (a checkpoint caught half-written is never loaded), a finished experiment is left
alone, and changing one experiment's block retrains only that experiment."""

from __future__ import annotations

import json

import pytest

from vestnik.training import CsvLog

from .workflow_helpers import (
    ROOT,
    Run,
    base_config,
    planned_jobs,
    run_workflow,
    small_vocoder,
    temp_files,
)

pytestmark = pytest.mark.slow

torch = pytest.importorskip("torch")

QUICK = small_vocoder(log_interval=2, val_items=1, samples=0, export="last")
KILLED = {**QUICK, "steps": 12, "checkpoint_interval": 2, "val_interval": 12}
OTHER = {**QUICK, "steps": 2, "checkpoint_interval": 2, "val_interval": 2}
GENERATORS = tuple(f"results/models/vocoder/{name}/generator.pt" for name in ("k", "o"))


def step_files(folder) -> list[int]:
    return sorted(int(p.stem.split("_")[1]) for p in folder.glob("step_*.pt"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Experiment k killed while training and again while writing a checkpoint, then finished
    together with experiment o: (workdir, config, facts about the kills)."""
    workdir = tmp_path_factory.mktemp("training")
    sentences = workdir / "sentences.txt"
    lines = (ROOT / "resources" / "texts" / "corpus_sentences.txt").read_text(encoding="utf-8")
    sentences.write_text("\n".join(lines.splitlines()[:6]) + "\n", encoding="utf-8")
    config = base_config({"greeting": {"text": "Привет."}})
    config["ruslan"].update(espeak_sentences=str(sentences), shards=1, val_size=1)
    config["vocoder"].update(train=["k", "o"], eval_items=1, experiments={"k": KILLED, "o": OTHER})
    config["acoustic"].update(train=[])
    folder = workdir / "results" / "models" / "vocoder" / "k"
    checkpoints = folder / "checkpoints"
    log = workdir / "logs" / "vocoder" / "k" / "train.log"

    run = Run(workdir, config, GENERATORS[0])
    run.wait_for(lambda: checkpoints.is_dir() and step_files(checkpoints), "a checkpoint")
    run.kill()
    killed_at = max(step_files(checkpoints))
    assert not (folder / "generator.pt").exists()
    assert killed_at < KILLED["steps"]
    assert run_workflow(workdir, config, extra=("--unlock",)).returncode == 0

    pause = f"step_{killed_at + 2:09d}.pt"
    run = Run(workdir, config, GENERATORS[0], env={"VESTNIK_PAUSE_AT": pause})
    run.wait_for(lambda: log.exists() and "VESTNIK_PAUSE_AT" in log.read_text(), "the pause")
    run.kill()
    resumed_first = log.read_text(encoding="utf-8")
    half_written = [p.name for p in temp_files(checkpoints)]
    assert max(step_files(checkpoints)) == killed_at
    assert run_workflow(workdir, config, extra=("--unlock",)).returncode == 0

    final = Run(workdir, config, *GENERATORS)
    assert final.finish() == 0, final.text()[-4000:]
    return workdir, config, {
        "killed_at": killed_at,
        "resumed_first": resumed_first,
        "resumed_last": log.read_text(encoding="utf-8"),
        "half_written": half_written,
    }


def test_training_resumes_after_each_kill(trained):
    workdir, _, facts = trained
    killed_at = facts["killed_at"]
    assert f"k: resumed at step {killed_at}" in facts["resumed_first"]
    assert "starting fresh" not in facts["resumed_first"]
    assert len(facts["half_written"]) == 1 and ".tmp.pt" in facts["half_written"][0]
    assert f"k: resumed at step {killed_at}" in facts["resumed_last"]
    folder = workdir / "results" / "models" / "vocoder" / "k"
    assert temp_files(folder) == []
    exported = torch.load(folder / "generator.pt", weights_only=True)
    assert exported["steps"] == exported["step"] == KILLED["steps"]  # export: last
    rows = CsvLog(folder / "train_log.csv", []).read()
    logged = [int(r["step"]) for r in rows if r.get("loss_g")]
    assert logged == list(range(2, KILLED["steps"] + 1, 2))  # no step lost, none twice
    experiment = json.loads((folder / "experiment.json").read_text(encoding="utf-8"))
    assert not (folder / "superseded").exists(), experiment


def test_finished_training_is_not_repeated(trained):
    workdir, config, _ = trained
    dry = Run(workdir, config, *GENERATORS, extra=("--dry-run",))
    assert dry.finish() == 0, dry.text()[-3000:]
    assert "Nothing to be done" in dry.text()


def test_changing_one_block_retrains_only_that_experiment(trained):
    workdir, config, _ = trained
    changed = json.loads(json.dumps(config))
    changed["vocoder"]["experiments"]["o"]["seed"] = 7
    dry = Run(workdir, changed, *GENERATORS, extra=("--dry-run",))
    assert dry.finish() == 0, dry.text()[-3000:]
    assert planned_jobs(dry.text(), "name") == {"o"}
    assert "train_vocoder" in dry.text()
