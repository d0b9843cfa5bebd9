"""Acoustic model training of one experiment: resumable, deterministic, with logs and plots.

Each step aligns the batch with monotonic alignment search under the current prior, then takes
one AdamW step on prior + duration + decoder losses. Validation runs the model on whole
validation utterances, both with the searched alignment (teacher forcing: how well it fits the
mel) and with its own predicted durations (how it will speak), and plots both with the
alignment. Every validation is followed by a checkpoint; the best validation model is exported.

Everything the run writes lives in its experiment folder:
  experiment.json        resolved config block and its hash (the identity of the run)
  phonemes.tsv           the tokens each utterance was trained with
  checkpoints/           step_*.pt (last K full states), best.pt + best.json
  train_log.csv          training losses every log_interval steps, val_* at validations
  plots/step_*/          alignment and mel plots of the first `plots` validation utterances
  curves.png             loss curves; model.pt: the exported model
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vestnik import training
from vestnik.acoustic import symbols
from vestnik.acoustic.checkpoint import export_model
from vestnik.acoustic.config import RUN_ONLY_KEYS, resolve_experiment
from vestnik.acoustic.data import (
    Item,
    MelStore,
    TextMelBatches,
    collate,
    mel_statistics,
    read_items,
)
from vestnik.acoustic.model import AcousticModel, count_parameters
from vestnik.io import write_tsv
from vestnik.mel import LOG_SILENCE
from vestnik.provenance import write_provenance

log = logging.getLogger("vestnik.acoustic")

LOG_FIELDS = (
    "step", "epoch", "lr", "loss", "prior", "duration", "decoder", "mel_l1",
    "val_loss", "val_prior", "val_duration", "val_mel_l1", "val_length_error",
    "steps_per_s", "time",
)
CURVE_PANELS = (
    ("total loss", ("loss", "val_loss")),
    ("prior (Gaussian NLL per value)", ("prior", "val_prior")),
    ("log-duration MSE", ("duration", "val_duration")),
    ("mel L1 (log-mel units)", ("mel_l1", "val_mel_l1")),
)


def _lr_factor(warmup: int):
    """Linear warm-up to 1, then inverse square root decay (the Transformer schedule)."""
    warmup = max(1, warmup)

    def factor(step: int) -> float:
        step = step + 1
        return min(step / warmup, (warmup / step) ** 0.5)

    return factor


class AcousticRun:
    """Model, optimiser and scheduler of one experiment, with state (de)serialisation."""

    def __init__(self, config: dict[str, Any], device: torch.device):
        self.config = config
        self.device = device
        training.seed_everything(config["seed"])
        self.model = AcousticModel(len(symbols.SYMBOLS), config["model"]).to(device)
        self.optim = torch.optim.AdamW(
            self.model.parameters(), config["lr"], betas=tuple(config["betas"]),
            weight_decay=config["weight_decay"],
        )
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.optim,
                                                       _lr_factor(config["warmup_steps"]))

    def state(self, step: int, epoch: int, best: Mapping[str, Any] | None) -> dict[str, Any]:
        return {
            "step": step,
            "epoch": epoch,
            "model": self.model.state_dict(),
            "optim": self.optim.state_dict(),
            "sched": self.sched.state_dict(),
            "rng": training.rng_states(),
            "best": dict(best) if best else None,
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optim.load_state_dict(state["optim"])
        self.sched.load_state_dict(state["sched"])
        training.restore_rng_states(state["rng"])

    def autocast(self) -> Any:
        use = self.device.type == "cuda" and self.config["bf16"]
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=use)

    def _losses(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        batch = {key: value.to(self.device) for key, value in batch.items()}
        with self.autocast():
            out = self.model(batch["tokens"], batch["token_lengths"], batch["mels"],
                             batch["mel_lengths"])
        out["loss"] = (out["prior_raw"] + self.config["duration_weight"] * out["duration"]
                       + self.config["decoder_weight"] * out["decoder"])
        return out

    def train_step(self, batch: Mapping[str, torch.Tensor]) -> dict[str, float]:
        self.model.train()
        self.optim.zero_grad(set_to_none=True)
        out = self._losses(batch)
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config["grad_clip"])
        self.optim.step()
        self.sched.step()
        return {key: out[key].item() for key in ("loss", "prior", "duration", "decoder", "mel_l1")}

    @torch.no_grad()
    def validate(self, items: list[Item], plot_dir: Path | None, plots: int) -> dict[str, float]:
        """Mean validation losses (teacher forced) and the length error of free-running speech."""
        self.model.eval()
        store = MelStore(items)
        sums: dict[str, float] = {}
        weight = 0
        length_errors = []
        size = self.config["batch_size"]
        try:
            for start in range(0, len(items), size):
                chunk = items[start : start + size]
                batch = collate(chunk, [store.get(start + i) for i in range(len(chunk))])
                out = self._losses(batch)
                for key in ("loss", "prior", "duration", "mel_l1"):
                    sums[key] = sums.get(key, 0.0) + out[key].item() * len(chunk)
                weight += len(chunk)
                tokens = batch["tokens"].to(self.device)
                lengths = batch["token_lengths"].to(self.device)
                free, _, free_lengths = self.model.infer(tokens, lengths)
                truth = batch["mel_lengths"].float()
                length_errors += ((free_lengths.cpu().float() - truth).abs() / truth).tolist()
                if plot_dir is not None and start < plots:
                    taught, _, _ = self.model.infer(tokens, lengths, durations=out["durations"])
                    for row in range(min(len(chunk), plots - start)):
                        _plot_item(plot_dir, chunk[row], batch, out, taught, free,
                                   free_lengths, row)
        finally:
            self.model.train()
        metrics = {f"val_{key}": value / weight for key, value in sums.items()}
        metrics["val_length_error"] = float(np.mean(length_errors))
        return metrics


def _plot_item(folder: Path, item: Item, batch: Mapping, out: Mapping, taught: torch.Tensor,
               free: torch.Tensor, free_lengths: torch.Tensor, row: int) -> None:
    from vestnik.vocoder.train import plot_mels

    n_tokens = int(batch["token_lengths"][row])
    n_frames = int(batch["mel_lengths"][row])
    free_frames = int(free_lengths[row])
    plot_alignment(folder / f"{item.id}_alignment.png",
                   out["logp"][row, :n_tokens, :n_frames].float().cpu().numpy(),
                   out["durations"][row, :n_tokens].cpu().numpy(), item.id)
    width = max(n_frames, free_frames)

    def padded(mel: np.ndarray) -> np.ndarray:
        result = np.full((mel.shape[0], width), LOG_SILENCE, dtype=np.float32)
        result[:, : mel.shape[1]] = mel
        return result

    plot_mels(folder / f"{item.id}_mel.png", [
        ("target", padded(batch["mels"][row, :, :n_frames].numpy())),
        ("aligned (MAS durations)", padded(taught[row, :, :n_frames].float().cpu().numpy())),
        ("free (predicted durations)", padded(free[row, :, :free_frames].float().cpu().numpy())),
    ], f"{item.id}: {item.phonemes[:90]}")


def plot_alignment(path: Path, logp: np.ndarray, durations: np.ndarray, title: str = "") -> None:
    """The per-frame token log-likelihoods with the searched path drawn over them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vestnik.io import atomic_write

    shown = logp - logp.max(axis=0, keepdims=True)
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.imshow(np.maximum(shown, -200.0), origin="lower", aspect="auto", interpolation="none")
    ends = np.cumsum(durations)
    starts = ends - durations
    ax.step(np.concatenate([starts, ends[-1:]]) - 0.5,
            np.concatenate([np.arange(len(durations)), [len(durations) - 1]]),
            where="post", color="white", linewidth=1.0)
    ax.set_xlabel("mel frame")
    ax.set_ylabel("token")
    if title:
        ax.set_title(f"{title}: log-likelihood per frame, searched alignment")
    fig.tight_layout()
    with atomic_write(path) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)


def _write_phonemes(path: Path, items: list[Item]) -> None:
    write_tsv(path, ("id", "frames", "tokens", "phonemes"),
              [{"id": i.id, "frames": i.frames, "tokens": len(i.tokens), "phonemes": i.phonemes}
               for i in items])


def train_acoustic(
    name: str,
    block: Mapping[str, Any] | None,
    train_tsv: str | os.PathLike,
    val_tsv: str | os.PathLike,
    out_dir: str | os.PathLike,
    threads: int | None = None,
    gpu: Mapping[str, Any] | None = None,
) -> Path:
    """Train (or resume) experiment `name` to its step count; returns the exported model.pt.

    `gpu` is the workflow's `gpu:` block (device slots); `threads` bounds CPU threads.
    """
    config = resolve_experiment(name, block)
    out_dir = Path(out_dir)
    key, resumable = training.open_experiment(
        config, RUN_ONLY_KEYS, train_tsv, val_tsv, out_dir, threads,
        identity_extra={"symbols": symbols.VERSION},
    )
    add_blank = config["model"]["add_blank"]
    train_items = read_items(train_tsv, add_blank, config["max_frames"])
    val_items = read_items(val_tsv, add_blank, config["max_frames"])[: config["val_items"] or None]
    _write_phonemes(out_dir / "phonemes.tsv", train_items + val_items)
    with training.training_device(config["device"], gpu, job=f"acoustic {name}") as device:
        path = _train(name, config, key, resumable, device, train_items, val_items, out_dir)
    write_provenance(out_dir / "provenance.json", {"experiment": name, "block": config},
                     [train_tsv, val_tsv], [], [path])
    return path


def _train(name: str, config: dict, key: str, resumable: bool, device: torch.device,
           train_items: list[Item], val_items: list[Item], out_dir: Path) -> Path:
    run = AcousticRun(config, device)
    batches = TextMelBatches(train_items, config["batch_size"], config["seed"])
    checkpoints = training.Checkpoints(out_dir / "checkpoints", config["keep_last"])
    csv_log = training.CsvLog(out_dir / "train_log.csv", LOG_FIELDS)

    state = checkpoints.load_latest(device) if resumable else None
    if state is not None:
        run.restore(state)
        step, best = state["step"], state["best"]
        checkpoints.forget_after(step)
        checkpoints.keep_best(state, lambda: {"model": run.model.state_dict()})
        log.info("%s: resumed at step %d (epoch %d) on %s", name, step, state["epoch"], device)
    else:
        step, best = 0, None
        mean, std = mel_statistics(batches.store, config["stats_items"], config["seed"])
        run.model.set_mel_stats(mean, std)
        log.info("%s: starting fresh on %s (state %s), %d parameters, %d training utterances",
                 name, device, key, count_parameters(run.model), len(train_items))
    csv_log.truncate_after(step)

    total_steps = config["steps"]
    bar = training.progress(total_steps, step, f"acoustic {name}")
    window_start, window_steps, sums = time.time(), 0, {}
    try:
        while step < total_steps:
            metrics = run.train_step(batches.batch(*divmod(step, batches.per_epoch)))
            step += 1
            epoch = step // batches.per_epoch
            window_steps += 1
            for k, v in metrics.items():
                sums[k] = sums.get(k, 0.0) + v
            bar.update(1)
            bar.set_postfix(mel=f"{metrics['mel_l1']:.3f}", refresh=False)
            if step % config["log_interval"] == 0 or step == total_steps:
                elapsed = time.time() - window_start
                csv_log.append({
                    "step": step, "epoch": epoch, "lr": run.optim.param_groups[0]["lr"],
                    **{k: v / window_steps for k, v in sums.items()},
                    "steps_per_s": window_steps / max(elapsed, 1e-9), "time": round(time.time()),
                })
                window_start, window_steps, sums = time.time(), 0, {}
            validate = step % config["val_interval"] == 0 or step == total_steps
            if validate:
                plot_dir = out_dir / "plots" / f"step_{step:09d}" if config["plots"] else None
                val = run.validate(val_items, plot_dir, config["plots"])
                csv_log.append({"step": step, "epoch": epoch, **val, "time": round(time.time())})
                if best is None or val["val_loss"] < best["metric"]:
                    best = {"step": step, "metric": val["val_loss"]}
                log.info("%s: step %d, val loss %.4f, mel L1 %.4f, length error %.1f%% "
                         "(best loss %.4f at %d)", name, step, val["val_loss"],
                         val["val_mel_l1"], 100 * val["val_length_error"], best["metric"],
                         best["step"])
            if validate or step % config["checkpoint_interval"] == 0:
                state = run.state(step, epoch, best)
                checkpoints.save(step, state)
                checkpoints.keep_best(state, lambda: {"model": run.model.state_dict()})
                training.plot_curves(out_dir / "train_log.csv", out_dir / "curves.png",
                                     CURVE_PANELS, f"acoustic {name}")
    finally:
        bar.close()
    return _export(name, config, run, checkpoints, out_dir, key, step, best)


def _export(name: str, config: dict, run: AcousticRun, checkpoints: training.Checkpoints,
            out_dir: Path, key: str, step: int, best: Mapping | None) -> Path:
    model = AcousticModel(len(symbols.SYMBOLS), config["model"])
    chosen, exported_step = checkpoints.chosen_weights(
        config["export"], {"model": run.model.state_dict()}, step
    )
    model.load_state_dict(chosen["model"])
    training.plot_curves(out_dir / "train_log.csv", out_dir / "curves.png", CURVE_PANELS,
                         f"acoustic {name}")
    path = out_dir / "model.pt"
    export_model(model, path, {
        "experiment": name, "state": key, "step": exported_step, "steps": step,
        "val_loss": best["metric"] if best else None,
    })
    log.info("%s: exported the step-%d model to %s", name, exported_step, path)
    return path
