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
import random
import shutil
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vestnik.errors import VestnikError
from vestnik.io import atomic_write, write_json

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

    def __init__(self, folder: str | os.PathLike, keep_last: int = 3):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.keep_last = max(1, keep_last)
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
            except (RuntimeError, EOFError, OSError, ValueError) as exc:
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


def plot_curves(
    csv_path: str | os.PathLike,
    png_path: str | os.PathLike,
    panels: Sequence[tuple[str, Sequence[str]]],
    title: str = "",
) -> None:
    """One PNG with a panel per (title, columns) pair, each column plotted against `step`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = CsvLog(csv_path, []).read()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, (panel_title, columns) in zip(axes[0], panels, strict=True):
        for column in columns:
            points = [(int(r["step"]), float(r[column])) for r in rows if r.get(column)]
            if points:
                steps, values = zip(*points, strict=True)
                ax.plot(steps, values, label=column, marker="." if len(points) < 30 else None)
        ax.set_title(panel_title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_write(png_path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)


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
