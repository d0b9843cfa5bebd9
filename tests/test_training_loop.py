"""The training loop shared by the vocoder and acoustic trainers, driven by a one-weight model.

The trainers' own tests (resume after SIGKILL, overfitting) run the loop with real networks;
these check the loop's bookkeeping where a tiny model makes every case cheap to reach.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from vestnik import training  # noqa: E402
from vestnik.io import read_tsv, write_tsv  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")


class LineFit(training.Recipe):
    """y = a * x + b by SGD, one (x, y) pair of train.tsv per step."""

    kind = "line"
    exported = "line.pt"
    log_fields = ("step", "epoch", "lr", "loss", "val_loss", "steps_per_s", "time")
    curve_panels = (("squared error", ("loss", "val_loss")),)
    best_metric = "val_loss"
    samples = "samples"
    run_only_keys = ("steps", "log_interval", "val_interval", "checkpoint_interval",
                     "keep_last", "export", "device")

    def __init__(self, name: str, config: dict[str, Any], device: torch.device, train_tsv: Path,
                 val_tsv: Path, out_dir: Path):
        super().__init__(name, config, device, train_tsv, val_tsv, out_dir)
        self.model = torch.nn.Linear(1, 1)
        self.optim = torch.optim.SGD(self.model.parameters(), lr=config["lr"])
        self.train_rows = [(float(r["x"]), float(r["y"])) for r in read_tsv(train_tsv)]
        self.val_rows = [(float(r["x"]), float(r["y"])) for r in read_tsv(val_tsv)]

    def parts(self) -> dict[str, Any]:
        return {"model": self.model, "optim": self.optim}

    def start_fresh(self) -> None:
        torch.nn.init.zeros_(self.model.weight)

    def epoch(self, step: int) -> int:
        return step // len(self.train_rows)

    def batch(self, step: int) -> tuple[float, float]:
        return self.train_rows[step % len(self.train_rows)]

    def train_step(self, step: int, batch: tuple[float, float]) -> dict[str, float]:
        x, y = batch
        self.optim.zero_grad()
        loss = (self.model(torch.tensor([[x]])) - y).pow(2).mean()
        loss.backward()
        self.optim.step()
        return {"loss": loss.item()}

    def learning_rate(self) -> float:
        return self.optim.param_groups[0]["lr"]

    @torch.no_grad()
    def validate(self, sample_dir: Path | None) -> dict[str, float]:
        errors = [(self.model(torch.tensor([[x]])).item() - y) ** 2 for x, y in self.val_rows]
        if sample_dir is not None:
            sample_dir.mkdir(parents=True, exist_ok=True)
            (sample_dir / "weight.txt").write_text(str(self.model.weight.item()))
        return {"val_loss": sum(errors) / len(errors)}

    def weights(self) -> dict[str, Any]:
        return {"model": self.model.state_dict()}

    def export(self, weights, path: Path, meta: dict[str, Any]) -> None:
        training.save_atomic(path, {**weights, **meta})


CONFIG = {"lr": 0.02, "seed": 3, "batch_size": 1, "world_size": 1, "steps": 12,
          "log_interval": 2, "val_interval": 4, "checkpoint_interval": 4, "keep_last": 5,
          "export": "best", "device": "cpu", "workers": 0}


@pytest.fixture
def split(tmp_path):
    points = [{"x": x / 4, "y": 2 * x / 4 + 1} for x in range(-4, 5)]
    write_tsv(tmp_path / "train.tsv", ("x", "y"), points)
    write_tsv(tmp_path / "val.tsv", ("x", "y"), points[::2])
    return tmp_path / "train.tsv", tmp_path / "val.tsv"


def train(split, out, **changes) -> Path:
    return training.train_experiment(LineFit, "line", {**CONFIG, **changes}, split, out)


def val_losses(out: Path) -> dict[int, float]:
    rows = training.CsvLog(out / "train_log.csv", []).read()
    return {int(r["step"]): float(r["val_loss"]) for r in rows if r["val_loss"]}


def test_export_takes_the_best_validation_by_the_declared_metric(split, tmp_path):
    out = tmp_path / "run"
    exported = training.load_state(train(split, out))
    curve = val_losses(out)
    assert sorted(curve) == [4, 8, 12]
    best_step = min(curve, key=curve.get)
    assert exported["step"] == best_step and exported["steps"] == 12
    assert exported["val_loss"] == pytest.approx(curve[best_step], rel=1e-5)
    assert json.loads((out / "checkpoints" / "best.json").read_text())["step"] == best_step
    assert sorted(p.name for p in (out / "samples").iterdir()) == [
        "step_000000004", "step_000000008", "step_000000012"]
    assert (out / "curves.png").stat().st_size > 0
    assert (out / "provenance.json").is_file()


def test_a_best_checkpoint_beyond_the_resumed_step_is_forgotten(split, tmp_path):
    """A kill can leave best.pt from a step whose checkpoint never became readable; the resumed
    run must not export those weights (nor keep their record) when it never reaches them."""
    out = tmp_path / "run"
    train(split, out)
    straight = val_losses(out)
    checkpoints = out / "checkpoints"
    (checkpoints / "step_000000012.pt").write_bytes(b"cut short by a kill")
    (out / "line.pt").unlink()
    ghost = {"step": 12, "metric": -1.0}  # better than anything this trajectory reaches
    (checkpoints / "best.json").write_text(json.dumps(ghost))
    training.save_atomic(checkpoints / "best.pt", {"model": {}, "step": 12})

    exported = training.load_state(train(split, out))
    assert val_losses(out) == pytest.approx(straight)
    best = json.loads((checkpoints / "best.json").read_text())
    assert best["metric"] == pytest.approx(min(straight.values()), rel=1e-5)
    assert exported["step"] == best["step"] == min(straight, key=straight.get)
    assert "weight" in exported["model"]


def test_a_longer_run_resumes_the_same_trajectory(split, tmp_path):
    out = tmp_path / "run"
    train(split, out, steps=6, log_interval=4)
    train(split, out, steps=12, log_interval=4)
    rows = training.CsvLog(out / "train_log.csv", []).read()
    assert [int(r["step"]) for r in rows if r["loss"]] == [4, 6, 8, 12]
    straight = tmp_path / "straight"
    train(split, straight, steps=12, log_interval=4)
    again = training.CsvLog(straight / "train_log.csv", []).read()
    assert [int(r["step"]) for r in again if r["loss"]] == [4, 8, 12]
    assert [r["val_loss"] for r in rows if r["val_loss"] and int(r["step"]) > 6] == [
        r["val_loss"] for r in again if r["val_loss"] and int(r["step"]) > 6]


def test_loader_workers_give_the_same_trajectory_resumed_or_not(split, tmp_path):
    here = tmp_path / "here"
    train(split, here)
    ahead = tmp_path / "ahead"
    train(split, ahead, steps=6, workers=2)
    train(split, ahead, workers=2)  # resumed at step 6 by a fresh loader
    resumed = val_losses(ahead)
    assert resumed.pop(6) and resumed == val_losses(here)  # 6: the end of the first run
    weights = [training.load_state(out / "line.pt")["model"] for out in (ahead, here)]
    assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[1])


def test_step_batches_run_in_order_from_the_first_step():
    made = list(training.step_batches(lambda step: torch.tensor([step]), 3, 9, 2, False))
    assert [int(b) for b in made] == [3, 4, 5, 6, 7, 8]
    assert list(training.step_batches(lambda step: step, 3, 5, 0, False)) == [3, 4]


@pytest.fixture
def fp32_switches():
    """torch's float32 precision switches, restored after the test."""
    matmul = torch.backends.cuda.matmul.fp32_precision
    conv = torch.backends.cudnn.conv.fp32_precision
    torch.backends.cuda.matmul.fp32_precision = "none"
    torch.backends.cudnn.conv.fp32_precision = "none"
    yield
    torch.backends.cuda.matmul.fp32_precision = matmul
    torch.backends.cudnn.conv.fp32_precision = conv


@pytest.mark.usefixtures("fp32_switches")
def test_tf32_follows_the_setting_on_cuda_and_the_cpu_is_left_alone():
    switches = (torch.backends.cuda.matmul, torch.backends.cudnn.conv)
    training.cuda_precision(torch.device("cpu"), {"tf32": True})
    assert [s.fp32_precision for s in switches] == ["none", "none"]
    training.cuda_precision(torch.device("cuda", 0), {"tf32": True})
    assert [s.fp32_precision for s in switches] == ["tf32", "tf32"]
    training.cuda_precision(torch.device("cuda", 0), {"tf32": False})
    assert [s.fp32_precision for s in switches] == ["ieee", "ieee"]


def test_bf16_autocast_only_on_cuda_and_only_when_asked(split, tmp_path):
    def recipe(device: str, bf16: bool) -> LineFit:
        return LineFit("line", {**CONFIG, "bf16": bf16}, torch.device(device), *split, tmp_path)

    assert recipe("cuda", True).bf16
    assert not recipe("cuda", False).bf16
    on_cpu = recipe("cpu", True)
    assert not on_cpu.bf16 and not on_cpu.autocast()._enabled
