"""HiFi-GAN: generator (V1/V2/V3), multi-period and multi-scale discriminators.

Module and parameter names follow the official implementation (jik876/hifi-gan), so its
generator checkpoints load unchanged: `conv_pre`, `ups.{i}`, `resblocks.{i}.convs1/convs2/convs`,
`conv_post`, each convolution weight-normalised with `weight_g` / `weight_v` (dim 0).

Weight norm is implemented here directly (the legacy torch helper that produces these key names
is deprecated): a convolution keeps `weight_g` and `weight_v` while training, and
`remove_weight_norm()` folds them into a plain `weight` for inference.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

LRELU_SLOPE = 0.1

GENERATOR_CONFIGS: dict[str, dict] = {
    "v1": {
        "resblock": "1",
        "upsample_rates": [8, 8, 2, 2],
        "upsample_kernel_sizes": [16, 16, 4, 4],
        "upsample_initial_channel": 512,
        "resblock_kernel_sizes": [3, 7, 11],
        "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
    },
    "v2": {
        "resblock": "1",
        "upsample_rates": [8, 8, 2, 2],
        "upsample_kernel_sizes": [16, 16, 4, 4],
        "upsample_initial_channel": 128,
        "resblock_kernel_sizes": [3, 7, 11],
        "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
    },
    "v3": {
        "resblock": "2",
        "upsample_rates": [8, 8, 4],
        "upsample_kernel_sizes": [16, 16, 8],
        "upsample_initial_channel": 256,
        "resblock_kernel_sizes": [3, 5, 7],
        "resblock_dilation_sizes": [[1, 2], [2, 6], [3, 12]],
    },
}
"""The official config_v1/v2/v3.json generator settings."""

GENERATOR_KEYS = tuple(GENERATOR_CONFIGS["v1"])


def get_padding(kernel_size: int, dilation: int = 1) -> int:
    return (kernel_size * dilation - dilation) // 2


def _norm_except_dim0(weight: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(weight, dim=tuple(range(1, weight.dim())), keepdim=True)


class _WeightNorm:
    """Mixin: weight = g * v / ||v|| (norm over all dims but 0), removable for inference."""

    def _init_weight_norm(self) -> None:
        weight = self.weight.detach()
        del self.weight
        self.weight_g = nn.Parameter(_norm_except_dim0(weight).clone())
        self.weight_v = nn.Parameter(weight.clone())

    @property
    def has_weight_norm(self) -> bool:
        return "weight_v" in self._parameters

    def effective_weight(self) -> torch.Tensor:
        if self.has_weight_norm:
            return self.weight_v * (self.weight_g / _norm_except_dim0(self.weight_v))
        return self.weight

    def remove_weight_norm(self) -> None:
        if not self.has_weight_norm:
            return
        weight = self.effective_weight().detach().clone()
        del self.weight_g
        del self.weight_v
        self.weight = nn.Parameter(weight)


class WNConv1d(_WeightNorm, nn.Conv1d):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_weight_norm()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.effective_weight(), self.bias)


class WNConv2d(_WeightNorm, nn.Conv2d):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_weight_norm()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.effective_weight(), self.bias)


class WNConvTranspose1d(_WeightNorm, nn.ConvTranspose1d):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_weight_norm()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv_transpose1d(
            x, self.effective_weight(), self.bias, self.stride, self.padding,
            self.output_padding, self.groups, self.dilation,
        )


class ResBlock1(nn.Module):
    """Three dilated convolutions, each followed by an undilated one, with residuals (V1, V2)."""

    def __init__(self, channels: int, kernel_size: int = 3, dilation: Sequence[int] = (1, 3, 5)):
        super().__init__()
        self.convs1 = nn.ModuleList(
            WNConv1d(channels, channels, kernel_size, 1, dilation=d,
                     padding=get_padding(kernel_size, d))
            for d in dilation
        )
        self.convs2 = nn.ModuleList(
            WNConv1d(channels, channels, kernel_size, 1, dilation=1,
                     padding=get_padding(kernel_size, 1))
            for _ in dilation
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2, strict=True):
            xt = c1(F.leaky_relu(x, LRELU_SLOPE))
            xt = c2(F.leaky_relu(xt, LRELU_SLOPE))
            x = xt + x
        return x

    def inference(self, x: torch.Tensor, activated: torch.Tensor, onednn: bool) -> torch.Tensor:
        """forward(x), given leaky_relu(x), with the activations and adds fused where possible."""
        for j, (c1, c2) in enumerate(zip(self.convs1, self.convs2, strict=True)):
            inner = activated if j == 0 else F.leaky_relu(x, LRELU_SLOPE)
            x = _conv_add(c2, _conv_leaky_relu(c1, inner, onednn), x, onednn)
        return x


class ResBlock2(nn.Module):
    """Dilated convolutions with residuals, no inner undilated layer (V3)."""

    def __init__(self, channels: int, kernel_size: int = 3, dilation: Sequence[int] = (1, 3)):
        super().__init__()
        self.convs = nn.ModuleList(
            WNConv1d(channels, channels, kernel_size, 1, dilation=d,
                     padding=get_padding(kernel_size, d))
            for d in dilation
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = conv(F.leaky_relu(x, LRELU_SLOPE)) + x
        return x

    def inference(self, x: torch.Tensor, activated: torch.Tensor, onednn: bool) -> torch.Tensor:
        """forward(x), given leaky_relu(x), with the adds fused where possible."""
        for j, conv in enumerate(self.convs):
            x = _conv_add(conv, activated if j == 0 else F.leaky_relu(x, LRELU_SLOPE), x, onednn)
        return x


def _onednn_fusion(x: torch.Tensor) -> bool:
    """Whether oneDNN's fused convolution ops (those Inductor uses) can take `x`."""
    if x.device.type != "cpu" or x.dtype != torch.float32 or not torch.backends.mkldnn.enabled:
        return False
    try:
        return torch.backends.mkldnn.is_available() and hasattr(
            torch.ops.mkldnn._convolution_pointwise, "binary"
        )
    except (AttributeError, RuntimeError):
        return False


def _conv_leaky_relu(conv: nn.Conv1d, x: torch.Tensor, onednn: bool) -> torch.Tensor:
    """leaky_relu(conv(x)) in one pass over the output on oneDNN."""
    if onednn:
        return torch.ops.mkldnn._convolution_pointwise(
            x, conv.weight, conv.bias, list(conv.padding), list(conv.stride),
            list(conv.dilation), conv.groups, "leaky_relu", [LRELU_SLOPE], "",
        )
    return F.leaky_relu_(conv(x), LRELU_SLOPE)


def _conv_add(conv: nn.Conv1d, x: torch.Tensor, other: torch.Tensor, onednn: bool) -> torch.Tensor:
    """conv(x) + other; oneDNN fuses the add for 2-D convolutions, so the 1-D one runs as
    2-D over a height of one."""
    if onednn:
        out = torch.ops.mkldnn._convolution_pointwise.binary(
            x.unsqueeze(2), other.unsqueeze(2), conv.weight.unsqueeze(2), conv.bias,
            [0, conv.padding[0]], [1, conv.stride[0]], [1, conv.dilation[0]], conv.groups,
            "add", 1.0, None, [], "",
        )
        return out.squeeze(2)
    return conv(x).add_(other)


class Generator(nn.Module):
    """Mel (B, 80, T) -> waveform (B, 1, T * prod(upsample_rates)) in [-1, 1].

    Transposed convolutions upsample; after each, a multi-receptive-field fusion averages the
    outputs of residual blocks with different kernel sizes.
    """

    def __init__(
        self,
        resblock: str,
        upsample_rates: Sequence[int],
        upsample_kernel_sizes: Sequence[int],
        upsample_initial_channel: int,
        resblock_kernel_sizes: Sequence[int],
        resblock_dilation_sizes: Sequence[Sequence[int]],
        n_mels: int = 80,
    ):
        super().__init__()
        self.config = {
            "resblock": str(resblock),
            "upsample_rates": list(upsample_rates),
            "upsample_kernel_sizes": list(upsample_kernel_sizes),
            "upsample_initial_channel": upsample_initial_channel,
            "resblock_kernel_sizes": list(resblock_kernel_sizes),
            "resblock_dilation_sizes": [list(d) for d in resblock_dilation_sizes],
        }
        self.num_kernels = len(resblock_kernel_sizes)
        self.num_upsamples = len(upsample_rates)
        self.hop = 1
        for rate in upsample_rates:
            self.hop *= rate
        self.conv_pre = WNConv1d(n_mels, upsample_initial_channel, 7, 1, padding=3)
        block = ResBlock1 if str(resblock) == "1" else ResBlock2
        self.ups = nn.ModuleList()
        for i, (rate, kernel) in enumerate(zip(upsample_rates, upsample_kernel_sizes, strict=True)):
            self.ups.append(
                WNConvTranspose1d(
                    upsample_initial_channel // 2**i,
                    upsample_initial_channel // 2 ** (i + 1),
                    kernel, rate, padding=(kernel - rate) // 2,
                )
            )
        self.resblocks = nn.ModuleList()
        channels = upsample_initial_channel
        for i in range(self.num_upsamples):
            channels = upsample_initial_channel // 2 ** (i + 1)
            for kernel, dilations in zip(
                resblock_kernel_sizes, resblock_dilation_sizes, strict=True
            ):
                self.resblocks.append(block(channels, kernel, dilations))
        self.conv_post = WNConv1d(channels, 1, 7, 1, padding=3)

    @classmethod
    def from_config(cls, config: dict) -> Generator:
        return cls(**{key: config[key] for key in GENERATOR_KEYS})

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        if not (self.training or torch.is_grad_enabled() or self.has_weight_norm):
            return self._inference(mel)
        return self.reference(mel)

    def reference(self, mel: torch.Tensor) -> torch.Tensor:
        """The plain forward pass (training, and graph export: no fused CPU-only ops)."""
        x = self.conv_pre(mel)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            blocks = self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]
            fused = blocks[0](x)
            for resblock in blocks[1:]:
                fused = fused + resblock(x)
            x = fused / self.num_kernels
        x = F.leaky_relu(x)  # default slope 0.01 here, as in the official generator
        return torch.tanh(self.conv_post(x))

    def _inference(self, mel: torch.Tensor) -> torch.Tensor:
        """forward() with fewer passes over memory: in-place activations, each stage's
        leaky_relu computed once for all its residual blocks, and on the CPU the residual adds
        and inner activations done by the convolutions (oneDNN post-ops)."""
        onednn = _onednn_fusion(mel)
        x = self.conv_pre(mel)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu_(x, LRELU_SLOPE))
            activated = F.leaky_relu(x, LRELU_SLOPE)
            blocks = self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]
            fused = blocks[0].inference(x, activated, onednn)
            for resblock in blocks[1:]:
                fused.add_(resblock.inference(x, activated, onednn))
            x = fused.div_(self.num_kernels)
        x = F.leaky_relu_(x)  # default slope 0.01
        return torch.tanh_(self.conv_post(x))

    def remove_weight_norm(self) -> Generator:
        for module in self.modules():
            if isinstance(module, _WeightNorm):
                module.remove_weight_norm()
        return self

    @property
    def has_weight_norm(self) -> bool:
        return any(
            isinstance(m, _WeightNorm) and m.has_weight_norm for m in self.modules()
        )


class DiscriminatorP(nn.Module):
    """Looks at every `period`-th sample: the waveform folded to (T / period, period) in 2D."""

    def __init__(self, period: int, width: float = 1.0, kernel_size: int = 5, stride: int = 3):
        super().__init__()
        self.period = period
        chans = [1] + [_scaled(c, width) for c in (32, 128, 512, 1024)]
        pad = (get_padding(kernel_size, 1), 0)
        self.convs = nn.ModuleList(
            WNConv2d(chans[i], chans[i + 1], (kernel_size, 1), (stride, 1), padding=pad)
            for i in range(4)
        )
        self.convs.append(WNConv2d(chans[4], chans[4], (kernel_size, 1), 1, padding=(2, 0)))
        self.conv_post = WNConv2d(chans[4], 1, (3, 1), 1, padding=(1, 0))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        fmap = []
        batch, channels, length = x.shape
        if length % self.period:
            extra = self.period - length % self.period
            x = F.pad(x, (0, extra), "reflect")
            length += extra
        x = x.view(batch, channels, length // self.period, self.period)
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LRELU_SLOPE)
            fmap.append(x)
        x = self.conv_post(x)
        fmap.append(x)
        return torch.flatten(x, 1, -1), fmap


class MultiPeriodDiscriminator(nn.Module):
    def __init__(self, periods: Sequence[int] = (2, 3, 5, 7, 11), width: float = 1.0):
        super().__init__()
        self.discriminators = nn.ModuleList(DiscriminatorP(p, width) for p in periods)

    def forward(self, y: torch.Tensor, y_hat: torch.Tensor) -> tuple[list, list, list, list]:
        return _run_all(self.discriminators, y, y_hat)


class DiscriminatorS(nn.Module):
    """Grouped strided 1-D convolutions over the waveform at one scale."""

    def __init__(self, use_spectral_norm: bool = False, width: float = 1.0):
        super().__init__()

        def conv(cin: int, cout: int, kernel: int, stride: int, groups: int = 1) -> nn.Module:
            if use_spectral_norm:
                layer = nn.Conv1d(cin, cout, kernel, stride, groups=groups, padding=kernel // 2)
                return spectral_norm(layer)
            return WNConv1d(cin, cout, kernel, stride, groups=groups, padding=kernel // 2)

        c = [_scaled(n, width, groups=16) for n in (128, 256, 512, 1024)]
        self.convs = nn.ModuleList(
            [
                conv(1, c[0], 15, 1),
                conv(c[0], c[0], 41, 2, groups=min(4, c[0])),
                conv(c[0], c[1], 41, 2, groups=16),
                conv(c[1], c[2], 41, 4, groups=16),
                conv(c[2], c[3], 41, 4, groups=16),
                conv(c[3], c[3], 41, 1, groups=16),
                conv(c[3], c[3], 5, 1),
            ]
        )
        self.conv_post = conv(c[3], 1, 3, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        fmap = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LRELU_SLOPE)
            fmap.append(x)
        x = self.conv_post(x)
        fmap.append(x)
        return torch.flatten(x, 1, -1), fmap


class MultiScaleDiscriminator(nn.Module):
    """Three scales: raw, 2x and 4x average-pooled; spectral norm on the raw-scale one."""

    def __init__(self, width: float = 1.0):
        super().__init__()
        self.discriminators = nn.ModuleList(
            [DiscriminatorS(use_spectral_norm=True, width=width),
             DiscriminatorS(width=width), DiscriminatorS(width=width)]
        )
        self.meanpools = nn.ModuleList(nn.AvgPool1d(4, 2, padding=2) for _ in range(2))

    def forward(self, y: torch.Tensor, y_hat: torch.Tensor) -> tuple[list, list, list, list]:
        real_out, fake_out, real_maps, fake_maps = [], [], [], []
        for i, disc in enumerate(self.discriminators):
            if i:
                y = self.meanpools[i - 1](y)
                y_hat = self.meanpools[i - 1](y_hat)
            for inp, outs, maps in ((y, real_out, real_maps), (y_hat, fake_out, fake_maps)):
                score, fmap = disc(inp)
                outs.append(score)
                maps.append(fmap)
        return real_out, fake_out, real_maps, fake_maps


def _run_all(discs: nn.ModuleList, y: torch.Tensor, y_hat: torch.Tensor) -> tuple:
    real_out, fake_out, real_maps, fake_maps = [], [], [], []
    for disc in discs:
        for inp, outs, maps in ((y, real_out, real_maps), (y_hat, fake_out, fake_maps)):
            score, fmap = disc(inp)
            outs.append(score)
            maps.append(fmap)
    return real_out, fake_out, real_maps, fake_maps


def _scaled(channels: int, width: float, groups: int = 1) -> int:
    """Channel count times `width`, kept a multiple of `groups` (width 1 = the paper's sizes)."""
    return max(groups, int(round(channels * width / groups)) * groups)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
