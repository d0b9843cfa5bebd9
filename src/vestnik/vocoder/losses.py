"""HiFi-GAN losses: least-squares GAN terms, feature matching and the mel L1 term.

Each function returns a scalar tensor; the training loop weights them (lambda_fm, lambda_mel).
The official code doubles the feature-matching sum inside its loss; here that factor is the
default `lambda_fm = 2`, so the totals agree.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def discriminator_loss(
    real_scores: Sequence[torch.Tensor], fake_scores: Sequence[torch.Tensor]
) -> torch.Tensor:
    """LSGAN: sum over discriminators of mean((1 - D(y))^2) + mean(D(G(x))^2)."""
    total = real_scores[0].new_zeros(())
    for real, fake in zip(real_scores, fake_scores, strict=True):
        total = total + torch.mean((1 - real.float()) ** 2) + torch.mean(fake.float() ** 2)
    return total


def generator_adversarial_loss(fake_scores: Sequence[torch.Tensor]) -> torch.Tensor:
    """LSGAN: sum over discriminators of mean((1 - D(G(x)))^2)."""
    total = fake_scores[0].new_zeros(())
    for fake in fake_scores:
        total = total + torch.mean((1 - fake.float()) ** 2)
    return total


def feature_matching_loss(
    real_maps: Sequence[Sequence[torch.Tensor]], fake_maps: Sequence[Sequence[torch.Tensor]]
) -> torch.Tensor:
    """Sum over discriminators and layers of mean |D_l(y) - D_l(G(x))| (real maps detached)."""
    total = fake_maps[0][0].new_zeros((), dtype=torch.float32)
    for real_layers, fake_layers in zip(real_maps, fake_maps, strict=True):
        for real, fake in zip(real_layers, fake_layers, strict=True):
            total = total + torch.mean(torch.abs(real.detach().float() - fake.float()))
    return total


def mel_l1_loss(real_mel: torch.Tensor, fake_mel: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of log-mel spectrograms (the shorter length wins)."""
    frames = min(real_mel.shape[-1], fake_mel.shape[-1])
    return F.l1_loss(fake_mel[..., :frames].float(), real_mel[..., :frames].float())
