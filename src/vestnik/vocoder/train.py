"""HiFi-GAN training of one experiment: resumable, deterministic, with logs, samples and plots.

Per optimiser step, `accumulation` micro-batches are generated; the discriminators are updated
on all of them first, then the generator against the updated discriminators (as in the official
loop, where the generator loss uses the freshly stepped discriminators). Validation runs the
generator on whole validation utterances and measures the mel L1 distance; every validation is
followed by a checkpoint, and the best validation generator is kept for export.

Everything the run writes lives in its experiment folder:
  experiment.json        resolved config block and its hash (the identity of the run)
  checkpoints/           step_*.pt (last K full states), best.pt + best.json
  train_log.csv          training losses every log_interval steps, val_mel_l1 at validations
  samples/step_*/        validation audio and mel plots every sample_interval steps
  curves.png             loss curves; generator.pt: the exported generator
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vestnik import training
from vestnik.corpus import TARGET_RATE
from vestnik.mel import mel_spectrogram
from vestnik.provenance import write_provenance
from vestnik.vocoder import losses
from vestnik.vocoder.checkpoint import export_generator, load_generator_weights, read_generator_file
from vestnik.vocoder.config import RUN_ONLY_KEYS, resolve_experiment
from vestnik.vocoder.data import SegmentBatches, full_utterance, read_split
from vestnik.vocoder.models import Generator, MultiPeriodDiscriminator, MultiScaleDiscriminator

log = logging.getLogger("vestnik.vocoder")

LOG_FIELDS = (
    "step", "epoch", "lr", "loss_g", "loss_d", "loss_adv", "loss_fm", "mel_l1",
    "val_mel_l1", "steps_per_s", "time",
)
CURVE_PANELS = (
    ("generator loss", ("loss_g",)),
    ("discriminator loss", ("loss_d",)),
    ("adversarial and feature matching", ("loss_adv", "loss_fm")),
    ("mel L1: train vs val", ("mel_l1", "val_mel_l1")),
)


class VocoderRun:
    """Models, optimisers and schedulers of one experiment, with state (de)serialisation."""

    def __init__(self, config: dict[str, Any], device: torch.device):
        self.config = config
        self.device = device
        training.seed_everything(config["seed"])
        self.generator = Generator.from_config(config["generator"]).to(device)
        width = config["discriminator_width"]
        self.mpd = MultiPeriodDiscriminator(config["periods"], width).to(device)
        self.msd = MultiScaleDiscriminator(width).to(device)
        betas = tuple(config["betas"])
        self.optim_g = torch.optim.AdamW(
            self.generator.parameters(), config["lr_generator"], betas=betas,
            weight_decay=config["weight_decay"],
        )
        self.optim_d = torch.optim.AdamW(
            itertools.chain(self.mpd.parameters(), self.msd.parameters()),
            config["lr_discriminator"], betas=betas, weight_decay=config["weight_decay"],
        )
        self.sched_g = torch.optim.lr_scheduler.ExponentialLR(self.optim_g, config["lr_decay"])
        self.sched_d = torch.optim.lr_scheduler.ExponentialLR(self.optim_d, config["lr_decay"])

    def state(self, step: int, epoch: int, best: Mapping[str, Any] | None,
              window: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "step": step,
            "epoch": epoch,
            "window": dict(window),
            "generator": self.generator.state_dict(),
            "mpd": self.mpd.state_dict(),
            "msd": self.msd.state_dict(),
            "optim_g": self.optim_g.state_dict(),
            "optim_d": self.optim_d.state_dict(),
            "sched_g": self.sched_g.state_dict(),
            "sched_d": self.sched_d.state_dict(),
            "rng": training.rng_states(),
            "best": dict(best) if best else None,
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        self.generator.load_state_dict(state["generator"])
        self.mpd.load_state_dict(state["mpd"])
        self.msd.load_state_dict(state["msd"])
        self.optim_g.load_state_dict(state["optim_g"])
        self.optim_d.load_state_dict(state["optim_d"])
        self.sched_g.load_state_dict(state["sched_g"])
        self.sched_d.load_state_dict(state["sched_d"])
        training.restore_rng_states(state["rng"])

    def autocast(self) -> Any:
        use = self.device.type == "cuda" and self.config["bf16"]
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=use)

    def discriminators(
        self, real: torch.Tensor, fake: torch.Tensor
    ) -> tuple[list, list, list, list]:
        """(real scores, fake scores, real feature maps, fake feature maps) of MPD and MSD."""
        with self.autocast():
            p = self.mpd(real, fake)
            s = self.msd(real, fake)
        return p[0] + s[0], p[1] + s[1], p[2] + s[2], p[3] + s[3]

    def train_step(
        self, micro_batches: list[tuple[torch.Tensor, torch.Tensor]]
    ) -> dict[str, float]:
        """One optimiser step of both sides over the micro-batches; returns the mean losses."""
        cfg = self.config
        count = len(micro_batches)
        d_params = list(itertools.chain(self.mpd.parameters(), self.msd.parameters()))
        fakes = []
        totals = dict.fromkeys(("loss_d", "loss_g", "loss_adv", "loss_fm", "mel_l1"), 0.0)
        self.optim_d.zero_grad(set_to_none=True)
        for mel, audio in micro_batches:
            mel, audio = mel.to(self.device), audio.to(self.device)
            with self.autocast():
                fake = self.generator(mel)
            real = audio.unsqueeze(1)
            real_scores, fake_scores, _, _ = self.discriminators(real, fake.detach())
            loss_d = losses.discriminator_loss(real_scores, fake_scores)
            (loss_d / count).backward()
            totals["loss_d"] += loss_d.item() / count
            fakes.append((real, fake))
        torch.nn.utils.clip_grad_norm_(d_params, cfg["grad_clip"])
        self.optim_d.step()

        self.optim_g.zero_grad(set_to_none=True)
        for param in d_params:
            param.requires_grad_(False)
        try:
            for real, fake in fakes:
                mel_l1 = losses.mel_l1_loss(
                    mel_spectrogram(real.squeeze(1), fmax=cfg["loss_fmax"]),
                    mel_spectrogram(fake.squeeze(1), fmax=cfg["loss_fmax"]),
                )
                _, fake_scores, real_maps, fake_maps = self.discriminators(real, fake)
                loss_adv = losses.generator_adversarial_loss(fake_scores)
                loss_fm = losses.feature_matching_loss(real_maps, fake_maps)
                loss_g = loss_adv + cfg["lambda_fm"] * loss_fm + cfg["lambda_mel"] * mel_l1
                (loss_g / count).backward()
                for key, value in (("loss_g", loss_g), ("loss_adv", loss_adv),
                                   ("loss_fm", loss_fm), ("mel_l1", mel_l1)):
                    totals[key] += value.item() / count
        finally:
            for param in d_params:
                param.requires_grad_(True)
        torch.nn.utils.clip_grad_norm_(self.generator.parameters(), cfg["grad_clip"])
        self.optim_g.step()
        return totals

    def end_epoch(self) -> None:
        self.sched_g.step()
        self.sched_d.step()

    @torch.inference_mode()
    def validate(self, items: list, sample_dir: Path | None, samples: int) -> float:
        """Mean mel L1 over whole validation utterances; writes audio + mel plots to sample_dir."""
        self.generator.eval()
        errors = []
        try:
            for index, item in enumerate(items):
                mel, audio = full_utterance(item)
                with self.autocast():
                    fake = self.generator(mel.to(self.device)).float().squeeze(0).squeeze(0)
                audio = audio.to(self.device)
                real_mel = mel_spectrogram(audio, fmax=self.config["loss_fmax"])
                fake_mel = mel_spectrogram(fake, fmax=self.config["loss_fmax"])
                errors.append(losses.mel_l1_loss(real_mel, fake_mel).item())
                if sample_dir is not None and index < samples:
                    _write_sample(sample_dir, item.id, fake.cpu().numpy(), real_mel.cpu().numpy(),
                                  fake_mel.cpu().numpy())
        finally:
            self.generator.train()
        return float(np.mean(errors))


def _write_sample(folder: Path, ident: str, audio: np.ndarray, real_mel: np.ndarray,
                  fake_mel: np.ndarray) -> None:
    from vestnik import media

    media.write_wav(folder / f"{ident}.wav", audio, TARGET_RATE)
    plot_mels(folder / f"{ident}.png", [("ground truth", real_mel), ("generated", fake_mel)],
              ident)


def plot_mels(path: Path, panels: list[tuple[str, np.ndarray]], title: str = "") -> None:
    """Stacked spectrogram images (one per (label, array) pair) in one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vestnik.io import atomic_write

    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 2.3 * len(panels)), squeeze=False)
    low = min(float(np.min(a)) for _, a in panels)
    high = max(float(np.max(a)) for _, a in panels)
    for ax, (label, array) in zip(axes[:, 0], panels, strict=True):
        ax.imshow(array, origin="lower", aspect="auto", interpolation="none", vmin=low, vmax=high)
        ax.set_ylabel(label)
    if title:
        axes[0, 0].set_title(title)
    fig.tight_layout()
    with atomic_write(path) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)


def train_vocoder(
    name: str,
    block: Mapping[str, Any] | None,
    train_tsv: str | os.PathLike,
    val_tsv: str | os.PathLike,
    out_dir: str | os.PathLike,
    threads: int | None = None,
    gpu: Mapping[str, Any] | None = None,
) -> Path:
    """Train (or resume) experiment `name` to its step count; returns the exported generator.pt.

    `gpu` is the workflow's `gpu:` block (device slots); `threads` bounds CPU threads.
    """
    config = resolve_experiment(name, block)
    out_dir = Path(out_dir)
    key, resumable = training.open_experiment(
        config, RUN_ONLY_KEYS, train_tsv, val_tsv, out_dir, threads
    )
    torch.backends.cudnn.benchmark = False
    with training.training_device(config["device"], gpu, job=f"vocoder {name}") as device:
        path = _train(name, config, key, resumable, device, Path(train_tsv), Path(val_tsv),
                      out_dir)
    init = [config["init_from"]] if config.get("init_from") else []
    write_provenance(out_dir / "provenance.json", {"experiment": name, "block": config},
                     [train_tsv, val_tsv], init, [path])
    return path


def _train(name: str, config: dict, key: str, resumable: bool, device: torch.device,
           train_tsv: Path, val_tsv: Path, out_dir: Path) -> Path:
    run = VocoderRun(config, device)
    batches = SegmentBatches(read_split(train_tsv), config["segment"], config["batch_size"],
                             config["seed"])
    val_items = read_split(val_tsv)[: config["val_items"] or None]
    checkpoints = training.Checkpoints(out_dir / "checkpoints", config["keep_last"])
    csv_log = training.CsvLog(out_dir / "train_log.csv", LOG_FIELDS)

    state = checkpoints.load_latest(device) if resumable else None
    window: dict[str, Any] = {"steps": 0, "sums": {}}
    if state is not None:
        run.restore(state)
        step, best, window = state["step"], state["best"], state["window"]
        checkpoints.keep_best(state, lambda: {"generator": run.generator.state_dict()})
        log.info("%s: resumed at step %d (epoch %d) on %s", name, step, state["epoch"], device)
    else:
        step, best = 0, None
        if config["init_from"]:
            data = read_generator_file(config["init_from"])
            load_generator_weights(run.generator, data["generator"], config["init_from"],
                                   f"the generator of experiment '{name}'")
            log.info("%s: generator initialised from %s", name, config["init_from"])
        log.info("%s: starting fresh on %s (state %s)", name, device, key)
    csv_log.truncate_after(step)
    if step == 0:
        initial = run.validate(val_items, None, 0)
        csv_log.append({"step": 0, "epoch": 0, "val_mel_l1": initial, "time": round(time.time())})
        log.info("%s: val mel L1 before training %.4f", name, initial)

    accumulation = config["accumulation"]
    total_steps = config["steps"]
    bar = training.progress(total_steps, step, f"vocoder {name}")
    window_start, timed_steps = time.time(), 0
    try:
        while step < total_steps:
            micro = [
                batches.batch(*divmod(step * accumulation + i, batches.per_epoch))
                for i in range(accumulation)
            ]
            metrics = run.train_step(micro)
            previous_epoch = (step * accumulation) // batches.per_epoch
            step += 1
            epoch = (step * accumulation) // batches.per_epoch
            for _ in range(epoch - previous_epoch):
                run.end_epoch()
            timed_steps += 1
            window["steps"] += 1
            for k, v in metrics.items():
                window["sums"][k] = window["sums"].get(k, 0.0) + v
            bar.update(1)
            bar.set_postfix(mel=f"{metrics['mel_l1']:.3f}", refresh=False)
            if step % config["log_interval"] == 0 or step == total_steps:
                elapsed = time.time() - window_start
                csv_log.append({
                    "step": step, "epoch": epoch, "lr": run.optim_g.param_groups[0]["lr"],
                    **{k: v / window["steps"] for k, v in window["sums"].items()},
                    "steps_per_s": timed_steps / max(elapsed, 1e-9), "time": round(time.time()),
                })
                window = {"steps": 0, "sums": {}}
                window_start, timed_steps = time.time(), 0
            validate = step % config["val_interval"] == 0 or step == total_steps
            if validate:
                sample = step % config["sample_interval"] == 0 or step == total_steps
                sample_dir = out_dir / "samples" / f"step_{step:09d}" if sample else None
                val = run.validate(val_items, sample_dir, config["samples"])
                csv_log.append({"step": step, "epoch": epoch, "val_mel_l1": val,
                                "time": round(time.time())})
                if best is None or val < best["metric"]:
                    best = {"step": step, "metric": val}
                log.info("%s: step %d, val mel L1 %.4f (best %.4f at %d)",
                         name, step, val, best["metric"], best["step"])
            if validate or step % config["checkpoint_interval"] == 0:
                state = run.state(step, epoch, best, window)
                checkpoints.save(step, state)
                checkpoints.keep_best(state, lambda: {"generator": run.generator.state_dict()})
                training.plot_curves(out_dir / "train_log.csv", out_dir / "curves.png",
                                     CURVE_PANELS, f"vocoder {name}")
    finally:
        bar.close()
    return _export(name, config, run, checkpoints, out_dir, key, step, best)


def _export(name: str, config: dict, run: VocoderRun, checkpoints: training.Checkpoints,
            out_dir: Path, key: str, step: int, best: Mapping | None) -> Path:
    generator = Generator.from_config(config["generator"])
    chosen, exported_step = checkpoints.chosen_weights(
        config["export"], {"generator": run.generator.state_dict()}, step
    )
    generator.load_state_dict(chosen["generator"])
    training.plot_curves(out_dir / "train_log.csv", out_dir / "curves.png", CURVE_PANELS,
                         f"vocoder {name}")
    path = out_dir / "generator.pt"
    export_generator(generator, path, {
        "experiment": name, "state": key, "step": exported_step, "steps": step,
        "val_mel_l1": best["metric"] if best else None, "loss_fmax": config["loss_fmax"],
    })
    log.info("%s: exported the step-%d generator to %s", name, exported_step, path)
    return path
