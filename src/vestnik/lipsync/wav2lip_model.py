"""The Wav2Lip generator, laid out so that the official checkpoints load strictly.

Module names, order and shapes follow the published network (Prajwal et al., 2020) exactly:
a 96x96 face encoder (six-channel input: lower-half-masked face + reference face), an audio
encoder over an 80x16 mel window, and a decoder that upsamples the audio embedding while
concatenating the matching face features (U-Net skips). Every convolution is followed by
BatchNorm and ReLU, optionally with a residual add before the ReLU. 36,298,035 parameters,
352 state_dict entries (BatchNorm running statistics included).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from vestnik.errors import VestnikError
from vestnik.training import read_torch_file

DP_PREFIX = "module."
"""nn.DataParallel's key prefix; the official wav2lip.pth carries it, wav2lip_gan.pth does not."""


class ConvBlock(nn.Module):
    """Conv2d + BatchNorm2d + ReLU, with an optional identity shortcut added before the ReLU."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int,
        stride: int | tuple[int, int],
        padding: int,
        residual: bool = False,
    ):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.Conv2d(cin, cout, kernel, stride, padding), nn.BatchNorm2d(cout)
        )
        self.act = nn.ReLU()
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_block(x)
        if self.residual:
            out = out + x
        return self.act(out)


class UpBlock(nn.Module):
    """ConvTranspose2d + BatchNorm2d + ReLU: one decoder upsampling step."""

    def __init__(
        self, cin: int, cout: int, kernel: int, stride: int, padding: int, output_padding: int = 0
    ):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ConvTranspose2d(cin, cout, kernel, stride, padding, output_padding),
            nn.BatchNorm2d(cout),
        )
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv_block(x))


def _res(channels: int, count: int) -> list[nn.Module]:
    return [ConvBlock(channels, channels, 3, 1, 1, residual=True) for _ in range(count)]


def _down(cin: int, cout: int, residuals: int) -> nn.Sequential:
    return nn.Sequential(ConvBlock(cin, cout, 3, 2, 1), *_res(cout, residuals))


def _up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(UpBlock(cin, cout, 3, 2, 1, output_padding=1), *_res(cout, 2))


class Wav2Lip(nn.Module):
    """Generator: (mel (B, 1, 80, 16), faces (B, 6, 96, 96) in [0, 1]) -> faces (B, 3, 96, 96)."""

    def __init__(self) -> None:
        super().__init__()
        self.face_encoder_blocks = nn.ModuleList(
            [
                nn.Sequential(ConvBlock(6, 16, 7, 1, 3)),  # 96x96
                _down(16, 32, 2),  # 48x48
                _down(32, 64, 3),  # 24x24
                _down(64, 128, 2),  # 12x12
                _down(128, 256, 2),  # 6x6
                _down(256, 512, 1),  # 3x3
                nn.Sequential(ConvBlock(512, 512, 3, 1, 0), ConvBlock(512, 512, 1, 1, 0)),  # 1x1
            ]
        )
        self.audio_encoder = nn.Sequential(
            ConvBlock(1, 32, 3, 1, 1),
            *_res(32, 2),
            ConvBlock(32, 64, 3, (3, 1), 1),
            *_res(64, 2),
            ConvBlock(64, 128, 3, 3, 1),
            *_res(128, 2),
            ConvBlock(128, 256, 3, (3, 2), 1),
            *_res(256, 1),
            ConvBlock(256, 512, 3, 1, 0),
            ConvBlock(512, 512, 1, 1, 0),
        )
        self.face_decoder_blocks = nn.ModuleList(
            [
                nn.Sequential(ConvBlock(512, 512, 1, 1, 0)),  # 1x1
                nn.Sequential(UpBlock(1024, 512, 3, 1, 0), *_res(512, 1)),  # 3x3
                _up(1024, 512),  # 6x6
                _up(768, 384),  # 12x12
                _up(512, 256),  # 24x24
                _up(320, 128),  # 48x48
                _up(160, 64),  # 96x96
            ]
        )
        self.output_block = nn.Sequential(
            ConvBlock(80, 32, 3, 1, 1), nn.Conv2d(32, 3, 1, 1, 0), nn.Sigmoid()
        )

    def forward(self, mel: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
        skips = []
        x = faces
        for block in self.face_encoder_blocks:
            x = block(x)
            skips.append(x)
        x = self.audio_encoder(mel)
        for block in self.face_decoder_blocks:
            x = torch.cat((block(x), skips.pop()), dim=1)
        return self.output_block(x)


def strip_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove DataParallel's `module.` prefix where every key has it (official wav2lip.pth)."""
    if state and all(key.startswith(DP_PREFIX) for key in state):
        return {key[len(DP_PREFIX) :]: value for key, value in state.items()}
    return dict(state)


def state_mismatches(model: nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """Human-readable differences between a model's state_dict and a loaded one (empty if none)."""
    expected = model.state_dict()
    problems = [
        f"missing key {key} {tuple(tensor.shape)}"
        for key, tensor in expected.items()
        if key not in state
    ]
    problems += [f"unexpected key {key}" for key in state if key not in expected]
    for key, tensor in expected.items():
        if key in state:
            got = state[key]
            shape = tuple(got.shape) if hasattr(got, "shape") else type(got).__name__
            if shape != tuple(tensor.shape):
                problems.append(f"shape of {key}: file {shape}, network {tuple(tensor.shape)}")
    return problems


def read_state(path: str | os.PathLike, *, job: str | None = None) -> dict[str, torch.Tensor]:
    """The generator weights of a checkpoint file: `{"state_dict": ...}` or a bare state dict.

    Tensors only (`weights_only=True`), so an untrusted file cannot run code while loading.
    """
    path = Path(path)
    blob = read_torch_file(path, "Wav2Lip checkpoint", job=job)
    state = blob.get("state_dict", blob) if isinstance(blob, dict) else None
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise VestnikError(
            "not a Wav2Lip checkpoint: expected a dict with a 'state_dict' of named tensors",
            job=job,
            path=path,
        )
    return strip_prefix(state)


def load_wav2lip(path: str | os.PathLike, *, job: str | None = None) -> Wav2Lip:
    """Build the network and load a checkpoint strictly; any key or shape mismatch is refused."""
    model = Wav2Lip()
    state = read_state(path, job=job)
    problems = state_mismatches(model, state)
    if problems:
        shown = "\n  ".join(problems[:40])
        more = f"\n  ... and {len(problems) - 40} more" if len(problems) > 40 else ""
        raise VestnikError(
            f"checkpoint does not fit the Wav2Lip network ({len(problems)} mismatches):\n"
            f"  {shown}{more}",
            job=job,
            path=path,
        )
    model.load_state_dict(state, strict=True)
    return model.eval()


def save_checkpoint(
    model: nn.Module, path: str | os.PathLike, *, data_parallel: bool = True
) -> None:
    """Write weights in the official training format (keys prefixed as nn.DataParallel does)."""
    prefix = DP_PREFIX if data_parallel else ""
    state = {prefix + key: value for key, value in model.state_dict().items()}
    torch.save({"state_dict": state, "optimizer": {}, "global_step": 0, "global_epoch": 0}, path)
