"""The voice's networks as ONNX graphs, so speaking needs onnxruntime and numpy but no torch.

The acoustic model is split where its output length depends on the data: the *encoder* graph
maps token ids to hidden states, prior means and log durations; integer durations and each
frame's token index are computed in numpy (`vestnik.acoustic.speak.frame_counts` and
`frame_index`, twins of the torch code); the *decoder* graph maps the token states, the frame
index and the position inside each token to the log-mel. The HiFi-GAN generator is exported
with weight norm folded, through its plain forward pass. Opset 17, dynamic time axes, one
utterance per call (batch 1).
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vestnik.acoustic.model import AcousticModel, _gather_frames
from vestnik.vocoder.models import Generator

OPSET = 17
GRAPHS = ("encoder", "decoder", "generator")
"""The graphs of a voice, saved as <name>.onnx."""


def _self_attention(attn: nn.MultiheadAttention, x: torch.Tensor) -> torch.Tensor:
    """`attn(x, x, x)` of one unpadded utterance in eval mode, written with shapes the tracer
    keeps symbolic (nn.MultiheadAttention's own path bakes the traced length into reshapes)."""
    batch, hidden = x.shape[0], x.shape[2]
    heads = attn.num_heads
    size = hidden // heads
    q, k, v = F.linear(x, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
    q, k, v = (t.reshape(batch, -1, heads, size).transpose(1, 2) for t in (q, k, v))
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(size), dim=-1)
    out = (weights @ v).transpose(1, 2).reshape(batch, -1, hidden)
    return attn.out_proj(out)


class EncoderGraph(nn.Module):
    """tokens (1, T) int64 -> hidden (1, T, H), mu (1, T, 80), logw (1, T).

    `TextEncoder.forward` and `AcousticModel.encode` for a batch of one (every mask one), in
    eval mode; the export test holds it to the torch model within 1e-3.
    """

    def __init__(self, model: AcousticModel):
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, ...]:
        encoder = self.model.encoder
        mask = torch.ones_like(tokens, dtype=torch.float32).unsqueeze(-1)
        x = encoder.embed(tokens) * encoder.scale
        for layer in encoder.prenet:
            x = x + layer(x, mask)
        for layer in encoder.layers:
            x = x + _self_attention(layer.attn, layer.norm1(x))
            y = layer.ffn_in(layer.norm2(x).transpose(1, 2)).transpose(1, 2)
            x = x + layer.ffn_out(F.gelu(y))
        hidden = encoder.norm(x)
        mu = self.model.proj_mu(hidden)
        logw = self.model.duration(hidden, mask)
        return hidden, mu, logw


class DecoderGraph(nn.Module):
    """hidden (1, T, H), mu (1, T, 80), index (1, F) int64, where (1, F, 2) -> mel (1, 80, F)."""

    def __init__(self, model: AcousticModel):
        super().__init__()
        self.model = model

    def forward(self, hidden: torch.Tensor, mu: torch.Tensor, index: torch.Tensor,
                where: torch.Tensor) -> torch.Tensor:
        frame_mask = torch.ones_like(where[:, :, :1])
        mu_frames = _gather_frames(mu, index)
        residual = self.model.decoder(_gather_frames(hidden, index), where, frame_mask)
        return self.model.denormalise(mu_frames + residual)


class GeneratorGraph(nn.Module):
    """mel (1, 80, F) -> audio (1, 1, F * 256)."""

    def __init__(self, generator: Generator):
        super().__init__()
        self.generator = generator

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.generator.reference(mel)


def _export(module: nn.Module, args: tuple, path: Path, inputs: dict[str, dict[int, str]],
            outputs: dict[str, dict[int, str]]) -> None:
    """One graph to `path` (written beside it first, then renamed)."""
    from vestnik.io import atomic_write

    with atomic_write(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notices about its own future
        torch.onnx.export(
            module.eval(), args, str(tmp), dynamo=False, opset_version=OPSET,
            input_names=list(inputs), output_names=list(outputs),
            dynamic_axes={**inputs, **outputs}, do_constant_folding=True,
        )


def export_acoustic(model: AcousticModel, folder: str | os.PathLike) -> dict[str, Path]:
    """encoder.onnx and decoder.onnx of an (eval-mode, CPU, float32) acoustic model."""
    folder = Path(folder)
    model = model.float().cpu().eval()
    tokens = torch.tensor([[3, 5, 7, 9, 11, 13, 15, 17]], dtype=torch.long)
    with torch.no_grad():
        hidden, mu, _ = EncoderGraph(model)(tokens)
    frames = 20
    index = torch.div(torch.arange(frames), 3, rounding_mode="floor").clamp(max=7)[None]
    where = torch.rand(1, frames, 2)
    tokens_axis, frames_axis = {1: "tokens"}, {1: "frames"}
    _export(EncoderGraph(model), (tokens,), folder / "encoder.onnx", {"tokens": tokens_axis},
            {"hidden": tokens_axis, "mu": tokens_axis, "logw": tokens_axis})
    _export(DecoderGraph(model), (hidden, mu, index, where), folder / "decoder.onnx",
            {"hidden": tokens_axis, "mu": tokens_axis, "index": frames_axis,
             "where": frames_axis}, {"mel": {2: "frames"}})
    return {"encoder": folder / "encoder.onnx", "decoder": folder / "decoder.onnx"}


def export_generator(generator: Generator, folder: str | os.PathLike) -> Path:
    """generator.onnx of a HiFi-GAN generator, weight norm folded."""
    folder = Path(folder)
    plain = generator
    if generator.has_weight_norm:
        plain = Generator.from_config(generator.config)
        plain.load_state_dict(generator.state_dict())
        plain.remove_weight_norm()
    plain = plain.float().cpu().eval()
    mel = torch.randn(1, 80, 24)
    _export(GeneratorGraph(plain), (mel,), folder / "generator.onnx", {"mel": {2: "frames"}},
            {"audio": {2: "samples"}})
    return folder / "generator.onnx"
