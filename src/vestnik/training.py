"""Machinery shared by every trainer: device choice, seeds, resumable checkpoints, logs, plots.

A training run must survive being killed at any moment (SIGKILL included) and continue to the
same step count, so checkpoints are written atomically with optimiser, scheduler and RNG states,
and an experiment's state folder is tied to the hash of its config block: a changed block starts
fresh instead of resuming from weights that belong to another recipe.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import pickle
import random
import shutil
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from vestnik import distributed, plots
from vestnik.errors import VestnikError
from vestnik.io import atomic_write, write_json
from vestnik.provenance import write_provenance

log = logging.getLogger("vestnik.training")

def config_hash(block: Mapping[str, Any], exclude: Iterable[str] = ()) -> str:
    """Stable short hash of an experiment block (canonical JSON), ignoring `exclude` keys.

    Keys that do not change the training trajectory (e.g. the step budget) are excluded by the
    caller, so extending a run resumes it instead of restarting it.
    """
    skip = set(exclude)
    kept = {key: value for key, value in block.items() if key not in skip}
    canonical = json.dumps(kept, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def file_digest(paths: Sequence[str | os.PathLike]) -> str:
    """Hash of the contents of several files (e.g. a data split), for state keys."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()[:16]


def choose_device(preference: str = "auto") -> torch.device:
    """A device for inference: CUDA when asked for or available, else the CPU with a warning."""
    if preference == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        log.warning("no CUDA device available (asked for '%s'): running on the CPU", preference)
        return torch.device("cpu")
    return torch.device("cuda" if preference == "auto" else preference)


@contextmanager
def training_device(
    preference: str = "auto", gpu: Mapping[str, Any] | None = None, job: str | None = None
) -> Iterator[torch.device]:
    """The device a training job runs on, held for the duration of the block.

    "auto" takes a slot of the `gpu:` config block (see vestnik.slots), so `--resources gpu=N`
    jobs spread over the GPUs; without CUDA it falls back to the CPU with a warning. "cpu" and
    an explicit "cuda:N" take no slot.
    """
    if preference != "auto":
        yield choose_device(preference)
        return
    from vestnik.slots import device_slot

    with device_slot(dict(gpu or {}), job=job) as device:
        yield torch.device(device)


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_states() -> dict[str, Any]:
    """All global RNG states, in types that `torch.load(weights_only=True)` accepts."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(np.asarray(keys).copy()), int(pos), int(has_gauss),
                  float(cached)),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: Mapping[str, Any]) -> None:
    """Inverse of `rng_states`."""
    random.setstate(states["python"])
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, keys.numpy(), pos, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_atomic(path: str | os.PathLike, obj: Any) -> None:
    """`torch.save` that never leaves a half-written file at `path`."""
    with atomic_write(path) as tmp:
        torch.save(obj, tmp)


def load_state(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint written by `save_atomic` (tensors and plain types only)."""
    return torch.load(path, map_location=map_location, weights_only=True)


def read_torch_file(path: str | os.PathLike, what: str, *, job: str | None = None) -> Any:
    """A checkpoint file's object, tensors and plain types only (`weights_only=True`), so an
    untrusted file cannot run code; a missing or unreadable file is a VestnikError naming it.

    Zip-format files (what torch.save writes) are memory-mapped: only the tensors used are read,
    and processes loading the same file share its pages. Legacy files (the official Wav2Lip
    checkpoints) are read whole.
    """
    import zipfile

    path = Path(path)
    if not path.is_file():
        raise VestnikError(f"{what} not found", job=job, path=path)
    try:
        return torch.load(
            path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path)
        )
    except Exception as exc:  # torch raises many types for corrupt or foreign files
        raise VestnikError(
            f"cannot read the {what}: not a readable torch checkpoint "
            f"({type(exc).__name__}: {str(exc)[:200]})",
            job=job,
            path=path,
        ) from exc


class Checkpoints:
    """A folder of full training states: the last `keep_last` by step, plus the best by a metric.

    `best.pt` holds whatever the caller passes (usually only the model to export), with the
    metric recorded in `best.json`; lower is better.
    """

    def __init__(self, folder: str | os.PathLike, keep_last: int = 3, writer: bool = True):
        """`writer`: this process writes here (and so clears partial files of a killed one);
        other ranks of a distributed run only read."""
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.keep_last = max(1, keep_last)
        if writer:
            for partial in self.folder.glob(".*.tmp*"):
                partial.unlink(missing_ok=True)

    def steps(self) -> list[int]:
        return sorted(int(p.stem.split("_")[1]) for p in self.folder.glob("step_*.pt"))

    def path(self, step: int) -> Path:
        return self.folder / f"step_{step:09d}.pt"

    def save(self, step: int, state: Mapping[str, Any]) -> Path:
        path = self.path(step)
        save_atomic(path, dict(state))
        for old in self.steps()[: -self.keep_last]:
            self.path(old).unlink(missing_ok=True)
        return path

    def load_latest(self, map_location: str | torch.device = "cpu") -> dict | None:
        """The newest readable state; an unreadable file is skipped with a warning."""
        for step in reversed(self.steps()):
            try:
                return load_state(self.path(step), map_location)
            except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError) as exc:
                log.warning("skipping unreadable checkpoint %s: %s", self.path(step), exc)
        return None

    @property
    def best_path(self) -> Path:
        return self.folder / "best.pt"

    def best_metric(self) -> float | None:
        record = self.folder / "best.json"
        if not record.is_file() or not self.best_path.is_file():
            return None
        return float(json.loads(record.read_text(encoding="utf-8"))["metric"])

    def save_best(self, step: int, metric: float, state: Mapping[str, Any]) -> bool:
        """Keep `state` as best.pt if `metric` beats the recorded best; True when it did."""
        best = self.best_metric()
        if best is not None and not metric < best:
            return False
        save_atomic(self.best_path, dict(state))
        write_json(self.folder / "best.json", {"step": step, "metric": metric})
        return True

    def keep_best(self, state: Mapping[str, Any], weights: Callable[[], dict]) -> None:
        """Make best.pt hold `weights()` when the state's best result is the state's own step.

        Also rewrites a best.pt lost or left behind by a kill, so best.pt always matches
        best.json.
        """
        best = state["best"]
        if best is None or best["step"] != state["step"]:
            return
        record = self.best_metric()
        if record is None or best["metric"] < record or not self.best_path.is_file():
            self.save_best(best["step"], best["metric"], {**weights(), "step": best["step"]})

    def chosen_weights(self, choice: str, current: dict, step: int) -> tuple[dict, int]:
        """Weights to export and their step: best.pt's for choice "best" (when kept), else
        `current` at `step`."""
        if choice == "best" and self.best_path.is_file():
            chosen = load_state(self.best_path)
            return chosen, chosen["step"]
        return current, step

    def forget_after(self, step: int) -> None:
        """Drop a best.pt from beyond `step` (written before a kill, not reached after resume)."""
        record = self.folder / "best.json"
        if record.is_file() and json.loads(record.read_text(encoding="utf-8"))["step"] > step:
            record.unlink()
            self.best_path.unlink(missing_ok=True)


def open_experiment(
    config: Mapping[str, Any],
    run_only_keys: Iterable[str],
    train_tsv: str | os.PathLike,
    val_tsv: str | os.PathLike,
    out_dir: Path,
    threads: int | None,
    identity_extra: Mapping[str, Any] | None = None,
) -> tuple[str, bool]:
    """(state key, whether a saved state can be resumed) of an experiment about to train.

    The key hashes the resolved block (less the keys that only steer the run), the train/val
    lists and `identity_extra` (e.g. a symbol table version), so a changed block, data set or
    table starts fresh; `threads` caps torch.
    """
    identity = {
        **config, **(identity_extra or {}), "data": file_digest([str(train_tsv), str(val_tsv)])
    }
    key = config_hash(identity, exclude=run_only_keys)
    resumable = prepare_state_dir(out_dir, config, key)
    if threads:
        torch.set_num_threads(threads)
    return key, resumable


def prepare_state_dir(folder: str | os.PathLike, block: Mapping[str, Any], block_hash: str) -> bool:
    """Tie `folder` to `block_hash`; a folder made for another hash is moved to superseded/.

    Returns True when the folder already belongs to this hash (so its state may be resumed).
    Content without a recorded hash (unknown origin) is moved aside too, as `superseded/unknown`.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    meta = folder / "experiment.json"
    old = "unknown"
    if meta.is_file():
        try:
            old = str(json.loads(meta.read_text(encoding="utf-8")).get("hash"))
        except ValueError:
            old = "unknown"
        if old == block_hash:
            return True
    entries = [entry for entry in folder.iterdir() if entry.name != "superseded"]
    if entries:
        target = folder / "superseded" / old
        suffix = 1
        while target.exists():
            target = folder / "superseded" / f"{old}.{suffix}"
            suffix += 1
        target.mkdir(parents=True)
        for entry in entries:
            shutil.move(str(entry), str(target / entry.name))
        log.info("state of %s is not for %s: moved to %s", folder, block_hash, target)
    write_json(meta, {"hash": block_hash, "config": dict(block)})
    return False


class CsvLog:
    """Append-only CSV of training metrics, truncated on resume to the restored step."""

    def __init__(self, path: str | os.PathLike, fields: Sequence[str]):
        self.path = Path(path)
        self.fields = list(fields)

    def read(self) -> list[dict[str, str]]:
        if not self.path.is_file():
            return []
        with open(self.path, encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
        return [row for row in rows if row.get("step") and None not in row.values()]

    def truncate_after(self, step: int) -> None:
        """Keep only complete rows with step <= `step` (rows after it will be logged again)."""
        rows = [row for row in self.read() if int(row["step"]) <= step]
        with atomic_write(self.path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=self.fields, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)

    def append(self, row: Mapping[str, Any]) -> None:
        new = not self.path.is_file() or self.path.stat().st_size == 0
        with open(self.path, "a", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.fields, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow({key: _fmt(row.get(key)) for key in self.fields})
            handle.flush()


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


class _LogStream(io.TextIOBase):
    """File-like object that turns tqdm's refreshes into log lines (readable in a log file)."""

    def __init__(self, logger: logging.Logger):
        self.logger = logger

    def write(self, text: str) -> int:
        line = text.strip("\r\n ")
        if line:
            self.logger.info(line)
        return len(text)


def progress(total: int, initial: int, desc: str) -> Any:
    """A tqdm bar (with ETA): live on a terminal, a log line every 10 s otherwise."""
    from tqdm import tqdm

    if sys.stderr.isatty():
        return tqdm(total=total, initial=initial, desc=desc, unit="step", dynamic_ncols=True)
    return tqdm(total=total, initial=initial, desc=desc, unit="step", file=_LogStream(log),
                mininterval=10.0, ascii=True, ncols=100)


class _StepBatches(torch.utils.data.Dataset):
    """Item i: the batch of step `first + i`, for a DataLoader over a run's remaining steps."""

    def __init__(self, batch: Callable[[int], Any], first: int, last: int):
        self.batch, self.first, self.last = batch, first, last

    def __len__(self) -> int:
        return self.last - self.first

    def __getitem__(self, index: int) -> Any:
        return self.batch(self.first + index)


def step_batches(batch: Callable[[int], Any], first: int, last: int, workers: int,
                 pin: bool) -> Iterator[Any]:
    """The batches of steps `first`..`last - 1` in order: made here when `workers` is 0 and
    nothing is pinned, else by a DataLoader with `workers` processes (a few batches ahead) and,
    with `pin`, a thread copying them to pinned memory. Batches do not depend on who makes them.
    """
    if not workers and not pin:
        return (batch(step) for step in range(first, last))
    loader = torch.utils.data.DataLoader(
        _StepBatches(batch, first, last), batch_size=None, shuffle=False, num_workers=workers,
        pin_memory=pin, prefetch_factor=2 if workers else None,
    )
    return iter(loader)


class Recipe(ABC):
    """What one model brings to the training loop: its state, its step, validation and export.

    The loop (`run`) owns everything else: resume, checkpoints, logs, curves, best tracking and
    the choice of the exported weights. A subclass declares:

    - `kind`: "vocoder" or "acoustic"; names the logger (`vestnik.<kind>`) and the progress bar.
    - `exported`: the file name of the exported model in the experiment folder.
    - `log_fields`: the train_log.csv columns; `curve_panels`: the panels of curves.png.
    - `best_metric`: the validation metric (lower is better) that picks best.pt, and so the
      exported weights; the experiment report names the best step by the same one.
    - `samples`: the folder under the experiment that validation samples go to.
    - `validate_first`: also validate (and log) before the first step; never counted as best.
    - `run_only_keys`: config keys that steer the run but not the weights (changing them
      resumes); `identity`: facts besides the config that the weights depend on.
    """

    kind: ClassVar[str]
    exported: ClassVar[str]
    log_fields: ClassVar[Sequence[str]]
    curve_panels: ClassVar[Sequence[tuple[str, Sequence[str]]]]
    best_metric: ClassVar[str]
    samples: ClassVar[str]
    validate_first: ClassVar[bool] = False
    run_only_keys: ClassVar[Sequence[str]]
    identity: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, name: str, config: dict[str, Any], device: torch.device, train_tsv: Path,
                 val_tsv: Path, out_dir: Path):
        """Models, optimisers and data of a run; seeded first, so a rerun builds the same."""
        self.name = name
        self.config = config
        self.device = device
        self.ranks = distributed.current()
        seed_everything(config["seed"])

    @abstractmethod
    def parts(self) -> dict[str, Any]:
        """Name -> model, optimiser or scheduler: everything a checkpoint saves and restores."""

    def state_dict(self) -> dict[str, Any]:
        """The parts' states by name (the loop adds step, RNG and best)."""
        return {name: part.state_dict() for name, part in self.parts().items()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Inverse of `state_dict`, given the whole saved state."""
        for name, part in self.parts().items():
            part.load_state_dict(state[name])

    def to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        """A batch tensor on the run's device (through pinned memory on CUDA; training batches
        come pinned from the loader)."""
        if self.device.type == "cuda":
            pinned = tensor if tensor.is_pinned() else tensor.pin_memory()
            return pinned.to(self.device, non_blocking=True)
        return tensor.to(self.device)

    def compiled(self, module: torch.nn.Module) -> torch.nn.Module:
        """`module` through `torch.compile` when the experiment's `compile` asks, else itself.

        Only the training forwards go through it: `parts()` and `weights()` hold the plain
        modules, so checkpoints, best.pt and exports keep plain state-dict keys (no
        `_orig_mod.` prefix) and resume or export with compilation on or off.
        """
        return torch.compile(module) if self.config["compile"] else module

    @property
    def bf16(self) -> bool:
        """Whether the networks run under bf16 autocast: on CUDA, when the experiment asks."""
        return self.device.type == "cuda" and self.config["bf16"]

    def autocast(self) -> Any:
        """bf16 autocast where `bf16` holds, else a no-op."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    @abstractmethod
    def start_fresh(self) -> None:
        """Called instead of a restore when no state is resumed (e.g. data statistics)."""

    @abstractmethod
    def epoch(self, step: int) -> int:
        """The epoch that `step` completed steps are in."""

    @abstractmethod
    def batch(self, step: int) -> Any:
        """This rank's training batch of optimiser step `step + 1`: a pure function of `step`
        (tensors, or lists and dicts of them), so loader workers can prepare it ahead."""

    @abstractmethod
    def train_step(self, step: int, batch: Any) -> dict[str, float]:
        """Optimiser step number `step + 1` on `batch` (`self.batch(step)`): mean losses.

        The first metric returned is shown on the progress bar.
        """

    @abstractmethod
    def learning_rate(self) -> float:
        """The current learning rate (logged)."""

    @abstractmethod
    def validate(self, sample_dir: Path | None) -> dict[str, float]:
        """Validation metrics; samples (audio, plots) go to `sample_dir` when given."""

    @abstractmethod
    def weights(self) -> dict[str, Any]:
        """What best.pt keeps and the export reads: the inference model's state only."""

    @abstractmethod
    def export(self, weights: Mapping[str, Any], path: Path, meta: dict[str, Any]) -> None:
        """Write the inference model made of `weights` (with `meta`) to `path`."""

    @classmethod
    def inputs_of(cls, config: Mapping[str, Any]) -> list[str]:
        """Files besides the data split that a run of `config` reads (for provenance.json)."""
        return []


def run(recipe: Recipe, key: str, resumable: bool, out_dir: Path) -> Path:
    """Train `recipe` to its step count, resuming its saved state when `resumable`; export.

    Every `val_interval` steps and at the end: a validation (with samples every
    `sample_interval` steps where the model has one, else at each validation), then a
    checkpoint; checkpoints also every `checkpoint_interval` steps. A resumed run draws the
    same batches, RNG streams and log windows as an uninterrupted one. With several ranks every
    rank runs this loop (validating the whole set, so all agree on the best step); rank 0
    alone writes.
    """
    name, config, device, ranks = recipe.name, recipe.config, recipe.device, recipe.ranks
    logger = logging.getLogger(f"vestnik.{recipe.kind}")
    checkpoints = Checkpoints(out_dir / "checkpoints", config["keep_last"], writer=ranks.main)
    csv_log = CsvLog(out_dir / "train_log.csv", recipe.log_fields)
    state = checkpoints.load_latest(device) if resumable else None
    if state is not None:
        recipe.load_state_dict(state)
        _restore_rank_rng(state, config["seed"], ranks)
        step, best, window = state["step"], state["best"], state["window"]
        if ranks.main:
            checkpoints.forget_after(step)
            checkpoints.keep_best(state, recipe.weights)
        logger.info("%s: resumed at step %d (epoch %d) on %s", name, step, state["epoch"], device)
    else:
        step, best, window = 0, None, {"steps": 0, "sums": {}}
        recipe.start_fresh()
        if not ranks.main:  # the same initial weights, but each rank its own dropout
            seed_everything(config["seed"] + ranks.rank)
        logger.info("%s: starting fresh on %s (state %s)", name, device, key)

    def write_log(row: Mapping[str, Any]) -> None:
        if ranks.main:
            csv_log.append({**row, "time": round(time.time())})

    def curves() -> None:
        if ranks.main:
            plots.curves(csv_log.read(), out_dir / "curves.png", recipe.curve_panels,
                         f"{recipe.kind} {name}")

    if ranks.main:
        csv_log.truncate_after(step)
    if step == 0 and recipe.validate_first:
        metrics = recipe.validate(None)
        write_log({"step": 0, "epoch": 0, **metrics})
        logger.info("%s: before training: %s", name, _metrics_text(metrics))

    total = config["steps"]
    sample_interval = config.get("sample_interval", config["val_interval"])
    bar = progress(total, step, f"{recipe.kind} {name}")
    batches = step_batches(recipe.batch, step, total, config["workers"], device.type == "cuda")
    timer, timed_steps = time.time(), 0
    try:
        for batch in batches:
            metrics = ranks.mean(recipe.train_step(step, batch))
            step += 1
            epoch = recipe.epoch(step)
            timed_steps += 1
            window["steps"] += 1
            for metric, value in metrics.items():
                window["sums"][metric] = window["sums"].get(metric, 0.0) + value
            bar.update(1)
            headline = next(iter(metrics))
            bar.set_postfix({headline: f"{metrics[headline]:.3f}"}, refresh=False)
            if step % config["log_interval"] == 0 or step == total:
                write_log({
                    "step": step, "epoch": epoch, "lr": recipe.learning_rate(),
                    **{metric: value / window["steps"] for metric, value in window["sums"].items()},
                    "steps_per_s": timed_steps / max(time.time() - timer, 1e-9),
                })
                window = {"steps": 0, "sums": {}}
                timer, timed_steps = time.time(), 0
            validate = step % config["val_interval"] == 0 or step == total
            if validate:
                sampled = ranks.main and (step % sample_interval == 0 or step == total)
                sample_dir = out_dir / recipe.samples / f"step_{step:09d}" if sampled else None
                val = recipe.validate(sample_dir)
                write_log({"step": step, "epoch": epoch, **val})
                if best is None or val[recipe.best_metric] < best["metric"]:
                    best = {"step": step, "metric": val[recipe.best_metric]}
                logger.info("%s: step %d, %s (best %s %.4f at step %d)", name, step,
                            _metrics_text(val), recipe.best_metric, best["metric"], best["step"])
            if validate or step % config["checkpoint_interval"] == 0:
                state = {**recipe.state_dict(), "step": step, "epoch": epoch,
                         "window": dict(window), "best": dict(best) if best else None,
                         "rng": rng_states()}
                if ranks.world > 1:
                    state["rng_ranks"] = ranks.gather(state["rng"])
                if ranks.main:
                    checkpoints.save(step, state)
                    checkpoints.keep_best(state, recipe.weights)
                curves()
    finally:
        bar.close()
        del batches  # a DataLoader's workers stop with its iterator

    path = out_dir / recipe.exported
    if ranks.main:
        weights, exported_step = checkpoints.chosen_weights(config["export"], recipe.weights(),
                                                            step)
        curves()
        recipe.export(weights, path, {
            "experiment": name, "state": key, "step": exported_step, "steps": step,
            recipe.best_metric: best["metric"] if best else None,
        })
        logger.info("%s: exported the step-%d weights to %s", name, exported_step, path)
    return path


def _restore_rank_rng(state: Mapping[str, Any], seed: int, ranks: distributed.Ranks) -> None:
    """This rank's saved RNG streams; a rank the saving run did not have gets rank 0's,
    reseeded from (seed, rank, step) so ranks stay apart."""
    saved = state.get("rng_ranks") or [state["rng"]]
    restore_rng_states(saved[ranks.rank] if ranks.rank < len(saved) else saved[0])
    if ranks.rank >= len(saved):
        seed_everything(int(np.random.SeedSequence([seed, ranks.rank, state["step"]])
                            .generate_state(1)[0]))


def _metrics_text(metrics: Mapping[str, float]) -> str:
    return ", ".join(f"{metric} {value:.4f}" for metric, value in metrics.items())


def train_experiment(
    recipe_type: type[Recipe],
    name: str,
    config: dict[str, Any],
    data: tuple[str | os.PathLike, str | os.PathLike],
    out_dir: str | os.PathLike,
    threads: int | None = None,
    gpu: Mapping[str, Any] | None = None,
) -> Path:
    """Train (or resume) experiment `name` (its resolved `config`) on the (train, val) split.

    Opens the experiment folder (state key, resumability), holds a training device for the
    run, and records provenance next to the exported model; returns the model's path. `gpu` is
    the workflow's `gpu:` block (device slots), `threads` bounds CPU threads. An experiment
    with `world_size` > 1 is handed to torchrun, whose ranks come back here (see
    vestnik.distributed); they take one GPU each, not a slot.
    """
    distributed.check_settings(recipe_type.kind, name, config)
    out_dir = Path(out_dir)
    train_tsv, val_tsv = (Path(path) for path in data)
    ranks = distributed.current()
    key, resumable = open_experiment(config, recipe_type.run_only_keys, train_tsv, val_tsv,
                                     out_dir, threads, recipe_type.identity)
    if ranks.world > 1:
        distributed.init(config, ranks)
        try:
            device = distributed.rank_device(config, ranks)
            cuda_precision(device, config)
            return run(recipe_type(name, config, device, train_tsv, val_tsv, out_dir), key,
                       resumable, out_dir)
        finally:
            torch.distributed.destroy_process_group()
    if config["world_size"] > 1:
        distributed.launch(f"{recipe_type.__module__}:{recipe_type.__qualname__}", name,
                           config, (train_tsv, val_tsv), out_dir, threads)
        path = out_dir / recipe_type.exported
    else:
        with training_device(config["device"], gpu, job=f"{recipe_type.kind} {name}") as device:
            cuda_precision(device, config)
            path = run(recipe_type(name, config, device, train_tsv, val_tsv, out_dir), key,
                       resumable, out_dir)
    write_provenance(out_dir / "provenance.json", {"experiment": name, "block": config},
                     [train_tsv, val_tsv], recipe_type.inputs_of(config), [path])
    return path


def cuda_precision(device: torch.device, config: Mapping[str, Any]) -> None:
    """On CUDA, float32 matrix products and convolutions in TF32 when the experiment's `tf32`
    asks, in full float32 otherwise; a CPU run leaves torch's settings alone. (bf16 autocast is
    `Recipe.autocast`.) Only torch's newer `fp32_precision` switches are used: torch refuses to
    report a mix of them and the legacy `allow_tf32` flags."""
    if device.type != "cuda":
        return
    mode = "tf32" if config["tf32"] else "ieee"
    torch.backends.cuda.matmul.fp32_precision = mode
    torch.backends.cudnn.conv.fp32_precision = mode
