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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vestnik import plots, training
from vestnik.corpus import TARGET_RATE
from vestnik.mel import mel_spectrogram
from vestnik.vocoder import losses
from vestnik.vocoder.checkpoint import export_generator, load_generator_weights, read_generator_file
from vestnik.vocoder.config import BEST_METRIC, RUN_ONLY_KEYS, SAMPLES, resolve_experiment
from vestnik.vocoder.data import SegmentBatches, full_utterance, read_split
from vestnik.vocoder.models import Generator, MultiPeriodDiscriminator, MultiScaleDiscriminator

log = logging.getLogger("vestnik.vocoder")


class VocoderTraining(training.Recipe):
    """Generator, discriminators, their optimisers and schedulers, and the segment batches."""

    kind = "vocoder"
    exported = "generator.pt"
    log_fields = (
        "step", "epoch", "lr", "loss_g", "loss_d", "loss_adv", "loss_fm", "mel_l1",
        "val_mel_l1", "steps_per_s", "time",
    )
    curve_panels = (
        ("generator loss", ("loss_g",)),
        ("discriminator loss", ("loss_d",)),
        ("adversarial and feature matching", ("loss_adv", "loss_fm")),
        ("mel L1: train vs val", ("mel_l1", "val_mel_l1")),
    )
    best_metric = BEST_METRIC
    samples = SAMPLES
    validate_first = True
    run_only_keys = RUN_ONLY_KEYS

    def __init__(self, name: str, config: dict[str, Any], device: torch.device, train_tsv: Path,
                 val_tsv: Path, out_dir: Path):
        super().__init__(name, config, device, train_tsv, val_tsv, out_dir)
        torch.backends.cudnn.benchmark = False
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
        # with several ranks the discriminators' gradients are averaged by DDP; the generator's
        # forwards (all micro-batches) precede its backwards, which DDP cannot pair up, so its
        # gradients are averaged explicitly after the last backward
        self.generator_step = self.compiled(self.generator)
        self.d_update = [self.compiled(self.ranks.wrap(d)) for d in (self.mpd, self.msd)]
        self.d_scores = (self.d_update if self.ranks.world == 1
                         else [self.compiled(d) for d in (self.mpd, self.msd)])
        self.batches = SegmentBatches(read_split(train_tsv), config["segment"],
                                      config["batch_size"], config["seed"])
        self.val_items = read_split(val_tsv)[: config["val_items"] or None]

    def parts(self) -> dict[str, Any]:
        return {"generator": self.generator, "mpd": self.mpd, "msd": self.msd,
                "optim_g": self.optim_g, "optim_d": self.optim_d, "sched_g": self.sched_g,
                "sched_d": self.sched_d}

    def start_fresh(self) -> None:
        source = self.config["init_from"]
        if source:
            load_generator_weights(self.generator, read_generator_file(source)["generator"],
                                   source, f"the generator of experiment '{self.name}'")
            log.info("%s: generator initialised from %s", self.name, source)

    @classmethod
    def inputs_of(cls, config: Mapping[str, Any]) -> list[str]:
        return [config["init_from"]] if config["init_from"] else []

    def epoch(self, step: int) -> int:
        return (step * self.config["accumulation"]) // self.batches.per_epoch

    def learning_rate(self) -> float:
        return self.optim_g.param_groups[0]["lr"]

    def discriminators(
        self, real: torch.Tensor, fake: torch.Tensor, training: bool = False
    ) -> tuple[list, list, list, list]:
        """(real scores, fake scores, real feature maps, fake feature maps) of MPD and MSD;
        `training`: through the rank-synchronised wrappers (their own update)."""
        mpd, msd = self.d_update if training else self.d_scores
        with self.autocast():
            p = mpd(real, fake)
            s = msd(real, fake)
        return p[0] + s[0], p[1] + s[1], p[2] + s[2], p[3] + s[3]

    def batch(self, step: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The step's `accumulation` micro-batches (this rank's rows of each)."""
        count = self.config["accumulation"]
        return [self.batches.batch(*divmod(step * count + i, self.batches.per_epoch), self.ranks)
                for i in range(count)]

    def train_step(self, step: int,
                   micro_batches: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, float]:
        """Both sides over `accumulation` micro-batches; the schedulers step at each new epoch."""
        cfg = self.config
        count = cfg["accumulation"]
        d_params = list(itertools.chain(self.mpd.parameters(), self.msd.parameters()))
        fakes = []
        totals = dict.fromkeys(("mel_l1", "loss_g", "loss_d", "loss_adv", "loss_fm"), 0.0)
        self.optim_d.zero_grad(set_to_none=True)
        for mel, audio in micro_batches:
            mel, audio = self.to_device(mel), self.to_device(audio)
            with self.autocast():
                fake = self.generator_step(mel)
            real = audio.unsqueeze(1)
            real_scores, fake_scores, _, _ = self.discriminators(real, fake.detach(), True)
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
        self.ranks.average_gradients(self.generator)
        torch.nn.utils.clip_grad_norm_(self.generator.parameters(), cfg["grad_clip"])
        self.optim_g.step()
        for _ in range(self.epoch(step + 1) - self.epoch(step)):
            self.sched_g.step()
            self.sched_d.step()
        return totals

    @torch.inference_mode()
    def validate(self, sample_dir: Path | None) -> dict[str, float]:
        """Mean mel L1 over whole validation utterances; the first `samples` go to sample_dir."""
        self.generator.eval()
        errors = []
        try:
            for index, item in enumerate(self.val_items):
                mel, audio = full_utterance(item)
                with self.autocast():
                    fake = self.generator(mel.to(self.device)).float().squeeze(0).squeeze(0)
                audio = audio.to(self.device)
                real_mel = mel_spectrogram(audio, fmax=self.config["loss_fmax"])
                fake_mel = mel_spectrogram(fake, fmax=self.config["loss_fmax"])
                errors.append(losses.mel_l1_loss(real_mel, fake_mel).item())
                if sample_dir is not None and index < self.config["samples"]:
                    _write_sample(sample_dir, item.id, fake.cpu().numpy(), real_mel.cpu().numpy(),
                                  fake_mel.cpu().numpy())
        finally:
            self.generator.train()
        return {"val_mel_l1": float(np.mean(errors))}

    def weights(self) -> dict[str, Any]:
        return {"generator": self.generator.state_dict()}

    def export(self, weights: Mapping[str, Any], path: Path, meta: dict[str, Any]) -> None:
        generator = Generator.from_config(self.config["generator"])
        generator.load_state_dict(weights["generator"])
        export_generator(generator, path, {**meta, "loss_fmax": self.config["loss_fmax"]})


def _write_sample(folder: Path, ident: str, audio: np.ndarray, real_mel: np.ndarray,
                  fake_mel: np.ndarray) -> None:
    from vestnik import media

    media.write_wav(folder / f"{ident}.wav", audio, TARGET_RATE)
    plots.mels(folder / f"{ident}.png", [("ground truth", real_mel), ("generated", fake_mel)],
               ident)


def train_vocoder(name: str, block: Mapping[str, Any] | None, train_tsv: str | os.PathLike,
                  val_tsv: str | os.PathLike, out_dir: str | os.PathLike,
                  threads: int | None = None, gpu: Mapping[str, Any] | None = None) -> Path:
    """Train (or resume) vocoder experiment `name` to its step count; returns generator.pt."""
    return training.train_experiment(VocoderTraining, name, resolve_experiment(name, block),
                                     (train_tsv, val_tsv), out_dir, threads, gpu)
