"""Text-to-mel network: a phoneme encoder with a Gaussian prior, MAS, durations and a conv decoder.

Training (as Glow-TTS's prior encoder, without its flow): the encoder predicts per token a mean
`mu` (80-d, normalised mel space); monotonic alignment search finds the token-to-frame path that
maximises the unit-variance Gaussian likelihood of the target frames; the prior loss pulls each
`mu` towards its frames; a duration predictor (on stop-gradient encoder states) predicts the log
of each token's mean frame count on that path (Poisson deviance, see `duration_deviance`); a
dilated conv decoder refines the upsampled means into the mel with an L1 loss. Inference
replaces the path with the predicted durations times a length scale.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vestnik.acoustic.mas import search_durations
from vestnik.mel import N_MELS


def sequence_mask(lengths: torch.Tensor, size: int | None = None) -> torch.Tensor:
    """(B,) lengths -> (B, size) bool, True inside each sequence."""
    size = int(lengths.max()) if size is None else size
    return torch.arange(size, device=lengths.device)[None, :] < lengths[:, None]


class _ConvNorm(nn.Module):
    """Conv1d over time on (B, T, C) tensors, followed by ReLU, LayerNorm and dropout."""

    def __init__(self, channels_in: int, channels: int, kernel: int, dropout: float):
        super().__init__()
        self.conv = nn.Conv1d(channels_in, channels, kernel, padding=kernel // 2)
        self.norm = nn.LayerNorm(channels)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.conv((x * mask).transpose(1, 2)).transpose(1, 2)
        return self.drop(self.norm(F.relu(x))) * mask


class _EncoderLayer(nn.Module):
    """Pre-norm transformer layer whose feed-forward part is a convolution over tokens."""

    def __init__(self, hidden: int, heads: int, ffn_hidden: int, kernel: int, dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden)
        self.attn = nn.MultiheadAttention(hidden, heads, dropout=dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(hidden)
        self.ffn_in = nn.Conv1d(hidden, ffn_hidden, kernel, padding=kernel // 2)
        self.ffn_out = nn.Linear(ffn_hidden, hidden)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        y = self.norm1(x)
        y, _ = self.attn(y, y, y, key_padding_mask=mask[:, :, 0] == 0, need_weights=False)
        x = (x + self.drop(y)) * mask
        y = self.ffn_in(self.norm2(x).transpose(1, 2)).transpose(1, 2)
        y = self.ffn_out(self.drop(F.gelu(y)))
        return (x + self.drop(y)) * mask


class TextEncoder(nn.Module):
    """Token ids -> hidden states: embedding, conv prenet (local context and relative position,
    so no absolute positions limit the length), then self-attention layers."""

    def __init__(self, n_symbols: int, cfg: Mapping[str, Any]):
        super().__init__()
        hidden = cfg["hidden"]
        self.embed = nn.Embedding(n_symbols, hidden)
        nn.init.normal_(self.embed.weight, 0.0, hidden**-0.5)
        self.prenet = nn.ModuleList(
            _ConvNorm(hidden, hidden, cfg["prenet_kernel"], cfg["dropout"])
            for _ in range(cfg["prenet_layers"])
        )
        self.layers = nn.ModuleList(
            _EncoderLayer(hidden, cfg["heads"], cfg["ffn_hidden"], cfg["ffn_kernel"],
                          cfg["dropout"])
            for _ in range(cfg["encoder_layers"])
        )
        self.norm = nn.LayerNorm(hidden)
        self.scale = math.sqrt(hidden)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens) * self.scale * mask
        for layer in self.prenet:
            x = x + layer(x, mask)
        for layer in self.layers:
            x = layer(x, mask)
        return self.norm(x) * mask


class DurationPredictor(nn.Module):
    """Log frame count per token from (detached) encoder states."""

    def __init__(self, hidden: int, cfg: Mapping[str, Any]):
        super().__init__()
        self.convs = nn.ModuleList([
            _ConvNorm(hidden, cfg["duration_hidden"], cfg["duration_kernel"], cfg["dropout"]),
            _ConvNorm(cfg["duration_hidden"], cfg["duration_hidden"], cfg["duration_kernel"],
                      cfg["dropout"]),
        ])
        self.out = nn.Linear(cfg["duration_hidden"], 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = conv(x, mask)
        return self.out(x).squeeze(-1) * mask[:, :, 0]


class _DecoderBlock(nn.Module):
    def __init__(self, channels: int, kernel: int, dilation: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.conv = nn.Conv1d(channels, channels, kernel, dilation=dilation,
                              padding=dilation * (kernel // 2))
        self.mix = nn.Linear(channels, channels)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        y = self.conv((self.norm(x) * mask).transpose(1, 2)).transpose(1, 2)
        return (x + self.drop(self.mix(F.gelu(y)))) * mask


class MelDecoder(nn.Module):
    """Upsampled encoder states (+ position inside the token) -> residual over the prior mean."""

    def __init__(self, hidden: int, cfg: Mapping[str, Any]):
        super().__init__()
        channels = cfg["decoder_hidden"]
        self.inp = nn.Linear(hidden + 2, channels)
        dilations = cfg["decoder_dilations"]
        self.blocks = nn.ModuleList(
            _DecoderBlock(channels, cfg["decoder_kernel"], dilations[i % len(dilations)],
                          cfg["dropout"])
            for i in range(cfg["decoder_layers"])
        )
        self.norm = nn.LayerNorm(channels)
        self.out = nn.Linear(channels, N_MELS)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(
        self, frames: torch.Tensor, where: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        x = self.inp(torch.cat([frames, where], dim=-1)) * mask
        for block in self.blocks:
            x = block(x, mask)
        return self.out(self.norm(x)) * mask


def frame_index(durations: torch.Tensor, t_mel: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For each frame, its token's index and (fraction through the token, log duration).

    `durations` is (B, T_text) integer frame counts; frames past the total get the last token.
    """
    ends = torch.cumsum(durations, dim=1)
    frames = torch.arange(t_mel, device=durations.device).expand(durations.shape[0], -1)
    index = torch.searchsorted(ends, frames.contiguous(), right=True)
    index = index.clamp(max=durations.shape[1] - 1)
    length = torch.gather(durations, 1, index).clamp(min=1).float()
    start = torch.gather(ends, 1, index).float() - length
    fraction = (frames.float() - start + 0.5) / length
    where = torch.stack([fraction.clamp(0.0, 1.0), torch.log(length) / 4.0], dim=-1)
    return index, where


def _gather_frames(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """values (B, T_text, C), index (B, T_mel) -> (B, T_mel, C)."""
    return torch.gather(values, 1, index.unsqueeze(-1).expand(-1, -1, values.shape[-1]))


DURATION_LOSS = "poisson-1"
"""What the duration predictor's output means (part of a training run's identity): the log of
a token's mean frame count, fitted by Poisson deviance."""


def duration_deviance(logw: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """Poisson deviance of frame counts `frames` under predicted log means `logw`, per token.

    Its minimiser is the conditional mean count, so predicted durations sum to an unbiased
    utterance length. Squared error of log durations would fit the median instead, and the
    medians of right-skewed durations sum short by about exp(var/2) of the log-residuals: a
    fifth of the length on real speech, whose pauses at commas vary most (bench/real_speech.md).
    """
    mean = torch.exp(logw)
    log_ratio = torch.log(frames.clamp(min=1e-6)) - logw
    return 2.0 * (torch.where(frames > 0, frames * log_ratio, torch.zeros_like(mean))
                  - (frames - mean))


class AcousticModel(nn.Module):
    """The whole text-to-mel model; mels outside it are vestnik.mel log-mels (B, 80, T)."""

    def __init__(self, n_symbols: int, cfg: Mapping[str, Any]):
        super().__init__()
        self.config = dict(cfg)
        self.n_symbols = n_symbols
        hidden = cfg["hidden"]
        self.encoder = TextEncoder(n_symbols, cfg)
        self.proj_mu = nn.Linear(hidden, N_MELS)
        self.duration = DurationPredictor(hidden, cfg)
        self.decoder = MelDecoder(hidden, cfg)
        self.register_buffer("mel_mean", torch.zeros(N_MELS))
        self.register_buffer("mel_std", torch.ones(N_MELS))

    def set_mel_stats(self, mean: np.ndarray, std: np.ndarray) -> None:
        self.mel_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.mel_std.copy_(torch.as_tensor(std, dtype=torch.float32).clamp(min=1e-3))

    def normalise(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, 80, T) log-mel -> (B, T, 80) in the model's per-channel unit space."""
        return (mel.transpose(1, 2) - self.mel_mean) / self.mel_std

    def denormalise(self, x: torch.Tensor) -> torch.Tensor:
        """Inverse of `normalise`."""
        return (x * self.mel_std + self.mel_mean).transpose(1, 2)

    def encode(self, tokens: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(hidden states, mu, log durations, token mask (B, T_text, 1))."""
        mask = sequence_mask(lengths, tokens.shape[1]).unsqueeze(-1).to(torch.float32)
        hidden = self.encoder(tokens, mask)
        mu = self.proj_mu(hidden) * mask
        logw = self.duration(hidden.detach(), mask)
        return hidden, mu, logw, mask

    def forward(
        self, tokens: torch.Tensor, token_lengths: torch.Tensor, mels: torch.Tensor,
        mel_lengths: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """Training pass: losses plus the alignment and predicted mel for logging."""
        hidden, mu, logw, token_mask = self.encode(tokens, token_lengths)
        target = self.normalise(mels.float())
        frame_mask = sequence_mask(mel_lengths, target.shape[1]).unsqueeze(-1).float()
        target = target * frame_mask
        # in float32 even under bf16 autocast: the search compares sums of many frames
        with torch.no_grad(), torch.autocast(tokens.device.type, enabled=False):
            mu32 = mu.float()
            # log N(x; mu, I) up to terms that are the same for every path
            logp = torch.bmm(mu32, target.transpose(1, 2)) - 0.5 * (mu32**2).sum(-1, keepdim=True)
            scores = logp.permute(2, 0, 1).contiguous().cpu().numpy()
            durations = torch.from_numpy(
                search_durations(scores, token_lengths.cpu().numpy(), mel_lengths.cpu().numpy())
            ).to(tokens.device)
        index, where = frame_index(durations, target.shape[1])
        mu_frames = _gather_frames(mu.float(), index) * frame_mask
        n_values = frame_mask.sum() * N_MELS
        prior = 0.5 * ((target - mu_frames) ** 2 * frame_mask).sum() / n_values
        deviance = duration_deviance(logw.float(), durations.float()) * token_mask[:, :, 0]
        token_durations = deviance.sum() / frame_mask.sum()
        # The utterance's total length as well (a mean over utterances, not tokens): with mean
        # durations per token it agrees with the token term and ties a sentence's tokens together.
        predicted_total = (torch.exp(logw.float()) * token_mask[:, :, 0]).sum(dim=1)
        total_length = ((torch.log1p(predicted_total)
                         - torch.log1p(mel_lengths.float())) ** 2).mean()
        residual = self.decoder(_gather_frames(hidden, index), where.to(hidden.dtype), frame_mask)
        predicted = (mu_frames.detach() + residual.float()) * frame_mask
        decoder = (predicted - target).abs().sum() / n_values
        mel_l1 = ((predicted - target).abs() * self.mel_std * frame_mask).sum() / n_values
        return {
            "prior": prior + 0.5 * math.log(2 * math.pi),
            "prior_raw": prior,
            "duration": token_durations + total_length,
            "token_durations": token_durations,
            "total_length": total_length,
            "decoder": decoder,
            "mel_l1": mel_l1,
            "durations": durations,
            "logp": logp,
            "predicted": predicted,
        }

    def predict_durations(
        self, logw: torch.Tensor, mask: torch.Tensor, length_scale: float
    ) -> torch.Tensor:
        """Integer frames per token: boundaries at the rounded running sum of exp(logw) * scale,
        so rounding errors do not accumulate over a long sentence."""
        frames = torch.exp(logw.float()).clamp(min=1.0) * length_scale * mask[:, :, 0]
        ends = torch.round(torch.cumsum(frames, dim=1)).long()
        starts = torch.cat([torch.zeros_like(ends[:, :1]), ends[:, :-1]], dim=1)
        return (ends - starts).clamp(min=0)

    @torch.no_grad()
    def infer(
        self, tokens: torch.Tensor, lengths: torch.Tensor | None = None,
        length_scale: float = 1.0, durations: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(log-mel (B, 80, T), frames per token (B, T_text), mel lengths (B,)).

        `durations` overrides the predicted ones (teacher forcing, e.g. from an alignment).
        """
        if lengths is None:
            lengths = torch.full((tokens.shape[0],), tokens.shape[1], device=tokens.device)
        hidden, mu, logw, mask = self.encode(tokens, lengths)
        if durations is None:
            durations = self.predict_durations(logw, mask, length_scale)
        mel_lengths = durations.sum(dim=1).clamp(min=1)
        t_mel = int(mel_lengths.max())
        frame_mask = sequence_mask(mel_lengths, t_mel).unsqueeze(-1).float()
        index, where = frame_index(durations, t_mel)
        mu_frames = _gather_frames(mu.float(), index) * frame_mask
        residual = self.decoder(_gather_frames(hidden, index), where.to(hidden.dtype), frame_mask)
        mel = self.denormalise(mu_frames + residual.float())
        return mel, durations, mel_lengths


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
