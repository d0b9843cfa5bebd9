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


def _mkldnn_fusion_available() -> bool:
    """Whether this torch build has oneDNN's fused convolution ops (the ones Inductor uses)."""
    try:
        return torch.backends.mkldnn.is_available() and all(
            hasattr(torch.ops.mkldnn, name)
            for name in ("_convolution_pointwise", "_convolution_transpose_pointwise")
        )
    except (AttributeError, RuntimeError):
        return False


class FusedConv(nn.Module):
    """One ConvBlock or UpBlock (or a bare convolution) as inference needs it.

    BatchNorm is folded into the convolution's weight and bias (the per-channel terms computed
    in float64, one float32 product per weight), so a block is one convolution: on the CPU a
    oneDNN call that also adds the residual and applies the ReLU; elsewhere a plain convolution
    followed by in-place add and ReLU. A layer that
    maps its whole input to one pixel (the 3x3 -> 1x1 bottlenecks) or one pixel to a whole
    kernel (the first decoder step, 1x1 -> 3x3) is a matrix product. Channels-last in and out.
    """

    def __init__(
        self,
        conv: nn.Conv2d | nn.ConvTranspose2d,
        norm: nn.BatchNorm2d | None = None,
        *,
        residual: bool = False,
        relu: bool = True,
    ):
        super().__init__()
        self.transposed = isinstance(conv, nn.ConvTranspose2d)
        weight = conv.weight.detach().float()
        bias = conv.bias.detach().float()
        if norm is not None:
            scale = norm.weight.detach().double() / torch.sqrt(
                norm.running_var.detach().double() + norm.eps
            )
            shift = norm.bias.detach().double()
            bias = ((bias.double() - norm.running_mean.detach().double()) * scale + shift).float()
            scale = scale.float()
            weight = weight * scale.view((1, -1, 1, 1) if self.transposed else (-1, 1, 1, 1))
        self.stride = list(conv.stride)
        self.padding = list(conv.padding)
        self.dilation = list(conv.dilation)
        self.output_padding = list(conv.output_padding) if self.transposed else []
        self.kernel = tuple(conv.kernel_size)
        self.residual = residual
        self.relu = relu
        self.fused = _mkldnn_fusion_available()
        self.matrix = not any(self.padding) and max(self.kernel) > 1 and (
            not self.transposed or (self.stride == [1, 1] and not any(self.output_padding))
        )
        if self.matrix and self.transposed:  # (Cin, kh * kw * Cout): x (B, Cin) @ it
            weight = weight.permute(0, 2, 3, 1).reshape(weight.shape[0], -1)
            bias = bias.repeat(self.kernel[0] * self.kernel[1])
        elif self.matrix:  # (kh * kw * Cin, Cout): channels-last x flattened @ it
            weight = weight.permute(2, 3, 1, 0).reshape(-1, weight.shape[0])
        self.register_buffer("weight", _channels_last(weight.float()))
        self.register_buffer("bias", bias.float())

    @classmethod
    def of_block(cls, block: ConvBlock | UpBlock) -> FusedConv:
        conv, norm = block.conv_block
        return cls(conv, norm, residual=getattr(block, "residual", False))

    def forward(self, x: torch.Tensor, add: torch.Tensor | None = None) -> torch.Tensor:
        """relu(conv(x) + [x if residual] + [add])."""
        other = x if self.residual else add
        if self.matrix:
            out = self._matmul(x)
        elif self.fused and x.device.type == "cpu" and x.dtype == torch.float32:
            return self._onednn(x, other)
        elif self.transposed:
            out = nn.functional.conv_transpose2d(
                x, self.weight, self.bias, self.stride, self.padding, self.output_padding,
                1, self.dilation,
            )
        else:
            out = nn.functional.conv2d(
                x, self.weight, self.bias, self.stride, self.padding, self.dilation
            )
        if other is not None:
            out = out.add_(other) if out.dtype == other.dtype else out + other
        return out.relu_() if self.relu else out

    def _matmul(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = x.shape
        if self.transposed:
            if (height, width) != (1, 1):
                raise ValueError(f"expected a 1x1 input, got {height}x{width}")
            out = torch.addmm(self.bias, x.reshape(batch, -1), self.weight)
            return out.view(batch, *self.kernel, -1).permute(0, 3, 1, 2)
        if (height, width) != self.kernel:
            raise ValueError(f"expected a {self.kernel} input, got {height}x{width}")
        out = torch.addmm(self.bias, x.permute(0, 2, 3, 1).reshape(batch, -1), self.weight)
        return out.view(batch, -1, 1, 1)

    def _onednn(self, x: torch.Tensor, other: torch.Tensor | None) -> torch.Tensor:
        mkldnn = torch.ops.mkldnn
        unary = "relu" if self.relu else "none"
        if self.transposed:
            out = mkldnn._convolution_transpose_pointwise(
                x, self.weight, self.bias, self.padding, self.output_padding, self.stride,
                self.dilation, 1, unary if other is None else "none", [], "",
            )
            if other is None:
                return out
            out = out.add_(other)
            return out.relu_() if self.relu else out
        if other is not None:
            return mkldnn._convolution_pointwise.binary(
                x, other, self.weight, self.bias, self.padding, self.stride, self.dilation,
                1, "add", 1.0, unary, [], "",
            )
        return mkldnn._convolution_pointwise(
            x, self.weight, self.bias, self.padding, self.stride, self.dilation, 1, unary, [], ""
        )


def _channels_last(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.contiguous(memory_format=torch.channels_last) if tensor.dim() == 4 else tensor


class InferenceWav2Lip(nn.Module):
    """The Wav2Lip generator for inference: the same function as `Wav2Lip`, built from one.

    Every block is a FusedConv and activations stay channels-last. The last U-Net skip is
    not concatenated: the output block's first convolution is split by input channels into
    one over the decoder's features and one over the skip, whose result the first adds in
    its fused op. Equal to `Wav2Lip` up to float32 rounding (about 1e-6 on outputs in [0, 1]).
    """

    def __init__(self, model: Wav2Lip):
        super().__init__()
        self.face_encoder = nn.ModuleList(
            nn.ModuleList(FusedConv.of_block(b) for b in stage)
            for stage in model.face_encoder_blocks
        )
        self.audio_encoder = nn.ModuleList(FusedConv.of_block(b) for b in model.audio_encoder)
        self.face_decoder = nn.ModuleList(
            nn.ModuleList(FusedConv.of_block(b) for b in stage)
            for stage in model.face_decoder_blocks
        )
        head, to_rgb = model.output_block[0], model.output_block[1]
        conv, norm = head.conv_block
        skip = model.face_encoder_blocks[0][0].conv_block[0].out_channels
        main = conv.in_channels - skip
        self.head_main = FusedConv(_input_slice(conv, 0, main), norm)
        self.head_skip = FusedConv(_input_slice(conv, main, conv.in_channels), norm, relu=False)
        self.head_skip.bias.zero_()  # the folded bias is added once, by head_main
        self.to_rgb = FusedConv(to_rgb, relu=False)

    def forward(self, mel: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
        skips = []
        x = faces.contiguous(memory_format=torch.channels_last)
        for stage in self.face_encoder:
            for layer in stage:
                x = layer(x)
            skips.append(x)
        x = mel.contiguous(memory_format=torch.channels_last)
        for layer in self.audio_encoder:
            x = layer(x)
        for stage in self.face_decoder[:-1]:
            for layer in stage:
                x = layer(x)
            x = torch.cat((x, skips.pop()), dim=1)
        for layer in self.face_decoder[-1]:
            x = layer(x)
        x = self.head_main(x, add=self.head_skip(skips.pop()))
        return torch.sigmoid(self.to_rgb(x))


def _input_slice(conv: nn.Conv2d, start: int, stop: int) -> nn.Conv2d:
    """The part of `conv` that reads input channels start..stop (with its bias)."""
    part = nn.Conv2d(stop - start, conv.out_channels, conv.kernel_size, conv.stride, conv.padding)
    with torch.no_grad():
        part.weight.copy_(conv.weight[:, start:stop])
        part.bias.copy_(conv.bias)
    return part


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


def with_trained_statistics(model: Wav2Lip, seed: int) -> Wav2Lip:
    """`model` with random BatchNorm statistics and affine terms, as a trained checkpoint has
    (fresh ones are identities, which would hide mistakes in folding them into convolutions):
    for checks and benchmarks of the inference form without the official weights."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in model.modules():
            if isinstance(layer, nn.BatchNorm2d):
                for tensor, (low, high) in (
                    (layer.running_mean, (-0.2, 0.2)),
                    (layer.running_var, (0.3, 2.0)),
                    (layer.weight, (0.5, 1.5)),
                    (layer.bias, (-0.2, 0.2)),
                ):
                    tensor.copy_(torch.empty_like(tensor).uniform_(low, high, generator=generator))
    return model.eval()


def load_wav2lip(path: str | os.PathLike, *, job: str | None = None) -> Wav2Lip:
    """Build the network and load a checkpoint strictly; any key or shape mismatch is refused.

    The network is built on the meta device and takes the file's tensors as they are, so no
    random initialisation is computed only to be overwritten.
    """
    with torch.device("meta"):
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
    model.load_state_dict(state, strict=True, assign=True)
    return model.float().eval()


def save_checkpoint(
    model: nn.Module, path: str | os.PathLike, *, data_parallel: bool = True
) -> None:
    """Write weights in the official training format (keys prefixed as nn.DataParallel does)."""
    prefix = DP_PREFIX if data_parallel else ""
    state = {prefix + key: value for key, value in model.state_dict().items()}
    torch.save({"state_dict": state, "optimizer": {}, "global_step": 0, "global_epoch": 0}, path)
