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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vestnik import plots, training
from vestnik.acoustic import symbols
from vestnik.acoustic.checkpoint import export_model
from vestnik.acoustic.config import BEST_METRIC, RUN_ONLY_KEYS, SAMPLES, resolve_experiment
from vestnik.acoustic.data import (
    Item,
    MelStore,
    TextMelBatches,
    collate,
    mel_statistics,
    read_items,
)
from vestnik.acoustic.model import DURATION_LOSS, AcousticModel, count_parameters
from vestnik.io import write_tsv
from vestnik.mel import LOG_SILENCE

log = logging.getLogger("vestnik.acoustic")


def _lr_factor(warmup: int):
    """Linear warm-up to 1, then inverse square root decay (the Transformer schedule)."""
    warmup = max(1, warmup)

    def factor(step: int) -> float:
        step = step + 1
        return min(step / warmup, (warmup / step) ** 0.5)

    return factor


class AcousticTraining(training.Recipe):
    """Model, optimiser, scheduler and length-grouped batches of one experiment."""

    kind = "acoustic"
    exported = "model.pt"
    log_fields = (
        "step", "epoch", "lr", "loss", "prior", "duration", "decoder", "mel_l1",
        "val_loss", "val_prior", "val_duration", "val_mel_l1", "val_length_error",
        "steps_per_s", "time",
    )
    curve_panels = (
        ("total loss", ("loss", "val_loss")),
        ("prior (Gaussian NLL per value)", ("prior", "val_prior")),
        ("duration (Poisson deviance per frame + length)", ("duration", "val_duration")),
        ("mel L1 (log-mel units)", ("mel_l1", "val_mel_l1")),
    )
    best_metric = BEST_METRIC
    samples = SAMPLES
    run_only_keys = RUN_ONLY_KEYS
    identity = {"symbols": symbols.VERSION, "durations": DURATION_LOSS}

    def __init__(self, name: str, config: dict[str, Any], device: torch.device, train_tsv: Path,
                 val_tsv: Path, out_dir: Path):
        super().__init__(name, config, device, train_tsv, val_tsv, out_dir)
        self.model = AcousticModel(len(symbols.SYMBOLS), config["model"]).to(device)
        self.optim = torch.optim.AdamW(
            self.model.parameters(), config["lr"], betas=tuple(config["betas"]),
            weight_decay=config["weight_decay"],
        )
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.optim,
                                                       _lr_factor(config["warmup_steps"]))
        add_blank = config["model"]["add_blank"]
        train_items = read_items(train_tsv, add_blank, config["max_frames"])
        self.val_items = read_items(val_tsv, add_blank,
                                    config["max_frames"])[: config["val_items"] or None]
        if self.ranks.main:
            _write_phonemes(out_dir / "phonemes.tsv", train_items + self.val_items)
        self.batches = TextMelBatches(train_items, config["batch_size"], config["seed"])
        self.model_ranks = self.compiled(self.ranks.wrap(self.model))

    def parts(self) -> dict[str, Any]:
        return {"model": self.model, "optim": self.optim, "sched": self.sched}

    def start_fresh(self) -> None:
        mean, std = mel_statistics(self.batches.store, self.config["stats_items"],
                                   self.config["seed"])
        self.model.set_mel_stats(mean, std)
        log.info("%s: %d parameters, %d training utterances", self.name,
                 count_parameters(self.model), len(self.batches.items))

    def epoch(self, step: int) -> int:
        return step // self.batches.per_epoch

    def learning_rate(self) -> float:
        return self.optim.param_groups[0]["lr"]

    def _losses(self, batch: Mapping[str, torch.Tensor], model: torch.nn.Module,
                weights: Mapping[str, float] | None = None) -> dict[str, torch.Tensor]:
        """The model's losses and their weighted sum; `weights` ("frames", "rows")
        scale the per-frame and per-utterance means of a rank's share to the whole
        batch's."""
        batch = {key: self.to_device(value) for key, value in batch.items()}
        with self.autocast():
            out = model(batch["tokens"], batch["token_lengths"], batch["mels"],
                        batch["mel_lengths"])
        if weights is not None:
            constant = out["prior"] - out["prior_raw"]
            for key in ("prior_raw", "decoder", "mel_l1"):
                out[key] = out[key] * weights["frames"]
            out["duration"] = (out["token_durations"] * weights["frames"]
                               + out["total_length"] * weights["rows"])
            out["prior"] = out["prior_raw"] + constant
        out["loss"] = (out["prior_raw"] + self.config["duration_weight"] * out["duration"]
                       + self.config["decoder_weight"] * out["decoder"])
        return out

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        """This rank's rows of the step's length-grouped batch."""
        return self.batches.batch(*divmod(step, self.batches.per_epoch), self.ranks)

    def train_step(self, step: int, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One AdamW step on the batch of `step` (prior + duration + decoder losses)."""
        self.model.train()
        self.optim.zero_grad(set_to_none=True)
        weights = self.ranks.weights({"frames": batch["mel_lengths"].sum(),
                                      "rows": len(batch["mel_lengths"])})
        out = self._losses(batch, self.model_ranks, weights)
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config["grad_clip"])
        self.optim.step()
        self.sched.step()
        return {key: out[key].item() for key in ("loss", "prior", "duration", "decoder", "mel_l1")}

    @torch.no_grad()
    def validate(self, sample_dir: Path | None) -> dict[str, float]:
        """Mean validation losses (teacher forced) and the length error of free-running speech;
        alignment and mel plots of the first `plots` utterances go to sample_dir."""
        self.model.eval()
        items, plots = self.val_items, self.config["plots"]
        store = MelStore(items)
        sums: dict[str, float] = {}
        weight = 0
        length_errors = []
        size = self.config["batch_size"]
        try:
            for start in range(0, len(items), size):
                chunk = items[start : start + size]
                batch = collate(chunk, [store.get(start + i) for i in range(len(chunk))])
                out = self._losses(batch, self.model)
                for key in ("loss", "prior", "duration", "mel_l1"):
                    sums[key] = sums.get(key, 0.0) + out[key].item() * len(chunk)
                weight += len(chunk)
                tokens = batch["tokens"].to(self.device)
                lengths = batch["token_lengths"].to(self.device)
                free, _, free_lengths = self.model.infer(tokens, lengths)
                truth = batch["mel_lengths"].float()
                length_errors += ((free_lengths.cpu().float() - truth).abs() / truth).tolist()
                if sample_dir is not None and start < plots:
                    taught, _, _ = self.model.infer(tokens, lengths, durations=out["durations"])
                    for row in range(min(len(chunk), plots - start)):
                        _plot_item(sample_dir, chunk[row], batch, out, taught, free,
                                   free_lengths, row)
        finally:
            self.model.train()
        metrics = {f"val_{key}": value / weight for key, value in sums.items()}
        metrics["val_length_error"] = float(np.mean(length_errors))
        return metrics


    def weights(self) -> dict[str, Any]:
        return {"model": self.model.state_dict()}

    def export(self, weights: Mapping[str, Any], path: Path, meta: dict[str, Any]) -> None:
        model = AcousticModel(len(symbols.SYMBOLS), self.config["model"])
        model.load_state_dict(weights["model"])
        export_model(model, path, meta)


def _plot_item(folder: Path, item: Item, batch: Mapping, out: Mapping, taught: torch.Tensor,
               free: torch.Tensor, free_lengths: torch.Tensor, row: int) -> None:
    n_tokens = int(batch["token_lengths"][row])
    n_frames = int(batch["mel_lengths"][row])
    free_frames = int(free_lengths[row])
    plots.alignment(folder / f"{item.id}_alignment.png",
                    out["logp"][row, :n_tokens, :n_frames].float().cpu().numpy(),
                    out["durations"][row, :n_tokens].cpu().numpy(), item.id)
    width = max(n_frames, free_frames)

    def padded(mel: np.ndarray) -> np.ndarray:
        result = np.full((mel.shape[0], width), LOG_SILENCE, dtype=np.float32)
        result[:, : mel.shape[1]] = mel
        return result

    plots.mels(folder / f"{item.id}_mel.png", [
        ("target", padded(batch["mels"][row, :, :n_frames].numpy())),
        ("aligned (MAS durations)", padded(taught[row, :, :n_frames].float().cpu().numpy())),
        ("free (predicted durations)", padded(free[row, :, :free_frames].float().cpu().numpy())),
    ], f"{item.id}: {item.phonemes[:90]}")


def _write_phonemes(path: Path, items: list[Item]) -> None:
    write_tsv(path, ("id", "frames", "tokens", "phonemes"),
              [{"id": i.id, "frames": i.frames, "tokens": len(i.tokens), "phonemes": i.phonemes}
               for i in items])


def train_acoustic(name: str, block: Mapping[str, Any] | None, train_tsv: str | os.PathLike,
                   val_tsv: str | os.PathLike, out_dir: str | os.PathLike,
                   threads: int | None = None, gpu: Mapping[str, Any] | None = None) -> Path:
    """Train (or resume) acoustic experiment `name` to its step count; returns model.pt."""
    return training.train_experiment(AcousticTraining, name, resolve_experiment(name, block),
                                     (train_tsv, val_tsv), out_dir, threads, gpu)
