"""RevCol's building blocks on (N, C, H, W) tensors: norms, per-channel scales, DropPath and the blocks of ``BLOCKS``.

Every module traces and exports as plain PyTorch; ``fuse()``, where defined, folds inference-time affine steps into
the neighbouring conv exactly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = (
    "BLOCKS",
    "Bottleneck",
    "C2fBlock",
    "ChannelScale",
    "ConvNeXtBlock",
    "ConvNorm",
    "DropPath",
    "ImageDecoder",
    "InvertedResidual",
    "LayerNorm2d",
    "ReversibleScale",
)

BLOCKS = ("convnext", "c2f", "inverted")  # block families; each brings its norm (LayerNorm / BatchNorm) along


class LayerNorm2d(nn.LayerNorm):  # a LayerNorm: optimisers grouping norms by class (Ultralytics) don't decay it
    """LayerNorm over the channels of an (N, C, H, W) tensor; statistics in float32, output in the input's dtype.

    Args:
        channels (int): Number of channels C.
        eps (float): Added to the variance for numerical stability.
        affine (bool): Learn a per-channel weight and bias.
    """

    def __init__(self, channels: int, eps: float = 1e-6, affine: bool = True):
        super().__init__(channels, eps=eps, elementwise_affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x`` (N, C, H, W) with each pixel's channel vector normalised (then scaled and shifted)."""
        y = x.float()
        centred = y - y.mean(1, keepdim=True)  # computed once: autograd would save two copies otherwise
        y = centred * torch.rsqrt(centred.pow(2).mean(1, keepdim=True) + self.eps)
        if self.weight is not None:  # None once fused into the following conv
            y = y * self.weight.float().view(-1, 1, 1) + self.bias.float().view(-1, 1, 1)
        return y.to(x.dtype)


class ChannelScale(nn.Module):
    """Learnable per-channel multiplier ``x * weight`` (ConvNeXt's layer scale); kept out of weight decay.

    Args:
        channels (int): Number of channels C.
        init_value (float): Initial value of every channel's scale.
    """

    def __init__(self, channels: int, init_value: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.full((channels,), float(init_value)))
        self.init_value = init_value

    def scale(self) -> torch.Tensor:
        """Return the per-channel factor actually applied, shaped (C,)."""
        return self.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Multiply every channel of ``x`` (N, C, H, W) by its scale."""
        return x * self.scale().view(-1, 1, 1).to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, init_value={self.init_value}"


class ReversibleScale(ChannelScale):
    """The reversible connection's alpha: a per-channel scale with |alpha| >= ``min_abs`` (straight-through clamp).

    Args:
        channels (int): Number of channels C.
        init_value (float): Initial alpha (0.5 in RevCol).
        min_abs (float): Smallest magnitude alpha may take.
    """

    def __init__(self, channels: int, init_value: float = 0.5, min_abs: float = 1e-3):
        super().__init__(channels, init_value)
        self.min_abs = min_abs

    def scale(self) -> torch.Tensor:
        """Return alpha with |alpha| >= min_abs (sign kept; exactly 0 maps to +min_abs), shaped (C,)."""
        raw = self.weight
        magnitude = raw.abs().clamp_min(self.min_abs)
        safe = torch.where(raw < 0, -magnitude, magnitude)
        return raw + (safe - raw).detach()  # straight-through: forward uses `safe`, gradient flows to `raw`


class DropPath(nn.Module):
    """Stochastic depth: in training, zero a whole residual branch per sample with probability ``p`` in [0, 1)."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x`` with some samples zeroed and the rest scaled by 1 / (1 - p); identity in eval mode."""
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask.div_(keep)

    def extra_repr(self) -> str:
        return f"p={self.p:.3f}"


class ConvNeXtBlock(nn.Module):
    """ConvNeXt block, channels-first: x + DropPath(scale * (1x1 rC->C (GELU (1x1 C->rC (LayerNorm (dw kxk x)))))).

    Args:
        channels (int): Channels in and out.
        kernel (int): Depthwise kernel size (odd).
        mlp_ratio (float): Hidden width of the MLP relative to ``channels``.
        layer_scale (float): Initial layer-scale value (1e-6 in ConvNeXt and RevCol).
        drop_path (float): DropPath probability of this block.
    """

    def __init__(
        self, channels: int, kernel: int = 3, mlp_ratio: float = 4.0, layer_scale: float = 1e-6, drop_path: float = 0.0
    ):
        super().__init__()
        hidden = max(1, int(round(channels * mlp_ratio)))
        self.dwconv = nn.Conv2d(channels, channels, kernel, padding=kernel // 2, groups=channels)
        self.norm = LayerNorm2d(channels)
        self.pwconv1 = nn.Conv2d(channels, hidden, 1)
        self.act = nn.GELU()
        self.pwconv2 = nn.Conv2d(hidden, channels, 1)
        self.gamma = ChannelScale(channels, layer_scale)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the block's output, shaped like ``x`` (N, C, H, W)."""
        y = self.pwconv2(self.act(self.pwconv1(self.norm(self.dwconv(x)))))
        return x + self.drop_path(self.gamma(y))

    @torch.no_grad()
    def fuse(self) -> None:
        """Fold the norm's affine into ``pwconv1`` and the layer scale into ``pwconv2`` (exact; inference only)."""
        # pwconv1(w * n + b) = (W1 diag(w)) n + (W1 b + b1), and g * pwconv2(h) = (diag(g) W2) h + g * b2
        if isinstance(self.gamma, nn.Identity):
            return
        w, b = self.norm.weight.float(), self.norm.bias.float()
        w1 = self.pwconv1.weight.float()  # (hidden, C, 1, 1)
        self.pwconv1.bias.copy_(self.pwconv1.bias.float() + (w1[:, :, 0, 0] @ b))
        self.pwconv1.weight.copy_(w1 * w.view(1, -1, 1, 1))
        g = self.gamma.scale().float()
        self.pwconv2.weight.copy_(self.pwconv2.weight.float() * g.view(-1, 1, 1, 1))
        self.pwconv2.bias.copy_(self.pwconv2.bias.float() * g)
        norm = LayerNorm2d(self.norm.normalized_shape[0], eps=self.norm.eps, affine=False)
        self.norm, self.gamma = norm.to(w1.device), nn.Identity()
        # Folded weights are inference-only, as Ultralytics' fuse_conv_and_bn leaves its fused convs
        self.pwconv1.requires_grad_(False)
        self.pwconv2.requires_grad_(False)


def _padding(kernel: int) -> int:
    """'Same' padding for odd kernels; none for even (patchify / 2x2 stride-2) kernels."""
    return kernel // 2 if kernel % 2 else 0


class ConvNorm(nn.Module):
    """Conv, norm, optional activation: "bn" is YOLO's Conv (no bias, BatchNorm, SiLU), "ln" ConvNeXt's (LN, GELU).

    Args:
        c1 (int): Input channels.
        c2 (int): Output channels.
        kernel (int): Kernel size (odd: 'same' padding; even: no padding).
        stride (int): Stride.
        norm (str): "bn" or "ln".
        act (bool): Apply the activation after the norm.
        groups (int): Convolution groups (``c1`` for a depthwise conv).
    """

    def __init__(
        self, c1: int, c2: int, kernel: int = 1, stride: int = 1, norm: str = "bn", act: bool = True, groups: int = 1
    ):
        super().__init__()
        if norm not in ("bn", "ln"):
            raise ValueError(f"ConvNorm norm must be 'bn' or 'ln', got {norm!r}")
        self.conv = nn.Conv2d(c1, c2, kernel, stride, _padding(kernel), groups=groups, bias=norm == "ln")
        self.norm = nn.BatchNorm2d(c2) if norm == "bn" else LayerNorm2d(c2)
        self.act = (nn.SiLU() if norm == "bn" else nn.GELU()) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return act(norm(conv(x)))."""
        return self.act(self.norm(self.conv(x)))

    @torch.no_grad()
    def fuse(self) -> None:
        """Fold a BatchNorm into the conv using its running statistics (exact in eval mode; LayerNorm stays)."""
        bn = self.norm
        if not isinstance(bn, nn.BatchNorm2d):
            return
        scale = bn.weight.float() * torch.rsqrt(bn.running_var.float() + bn.eps)
        conv = self.conv
        fused = nn.Conv2d(
            conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, groups=conv.groups
        ).to(conv.weight.device)
        fused.weight.copy_(conv.weight.float() * scale.view(-1, 1, 1, 1))
        fused.bias.copy_(bn.bias.float() - bn.running_mean.float() * scale)
        # A fresh Conv2d requires grad; the folded one is inference-only, as in Ultralytics' fuse_conv_and_bn
        self.conv, self.norm = fused.to(conv.weight.dtype).requires_grad_(False), nn.Identity()


class Bottleneck(nn.Module):
    """YOLO-style residual bottleneck: two kxk conv + BN + SiLU, added to the input.

    Args:
        channels (int): Channels in and out.
        kernel (int): Kernel size of both convs.
        drop_path (float): DropPath probability of the residual branch.
    """

    def __init__(self, channels: int, kernel: int = 3, drop_path: float = 0.0):
        super().__init__()
        self.cv1 = ConvNorm(channels, channels, kernel)
        self.cv2 = ConvNorm(channels, channels, kernel)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return x + cv2(cv1(x))."""
        return x + self.drop_path(self.cv2(self.cv1(x)))


class C2fBlock(nn.Module):
    """YOLOv8's C2f, channels in = out: 1x1 split in halves, ``n`` bottlenecks on the second, all concatenated, 1x1.

    Args:
        channels (int): Channels in and out.
        n (int): Number of bottlenecks.
        kernel (int): Kernel size inside the bottlenecks.
        drop_path (Sequence[float]): DropPath probability of each bottleneck (length ``n``).
    """

    def __init__(self, channels: int, n: int = 1, kernel: int = 3, drop_path=(0.0,)):
        super().__init__()
        hidden = max(channels // 2, 1)
        self.hidden = hidden
        self.cv1 = ConvNorm(channels, 2 * hidden, 1)
        self.m = nn.ModuleList(Bottleneck(hidden, kernel, drop_path[i]) for i in range(n))
        self.cv2 = ConvNorm((2 + n) * hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the block's output, same shape as ``x``."""
        y = list(self.cv1(x).split(self.hidden, 1))
        for m in self.m:
            y.append(m(y[-1]))
        return self.cv2(torch.cat(y, 1))


class InvertedResidual(nn.Module):
    """MobileNetV2's inverted residual: x + DropPath(1x1 rC->C (dw kxk (1x1 C->rC x))), BN after each, SiLU but last.

    Args:
        channels (int): Channels in and out.
        kernel (int): Depthwise kernel size (odd).
        expansion (float): Hidden width relative to ``channels``.
        drop_path (float): DropPath probability of the residual branch.
    """

    def __init__(self, channels: int, kernel: int = 3, expansion: float = 2.0, drop_path: float = 0.0):
        super().__init__()
        hidden = max(1, int(round(channels * expansion)))
        self.expand = ConvNorm(channels, hidden, 1)
        self.dwconv = ConvNorm(hidden, hidden, kernel, groups=hidden)
        self.project = ConvNorm(hidden, channels, 1, act=False)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return x + project(dwconv(expand(x))), same shape as ``x``."""
        return x + self.drop_path(self.project(self.dwconv(self.expand(x))))


class ImageDecoder(nn.Module):
    """Rebuild a stride-4 copy of the image from a stride-32 state: 1x1 conv to 3 * 8 * 8, pixel shuffle by 8.

    Args:
        channels (int): Channels of the stride-32 state.
        image_channels (int): Channels of the image to rebuild.
    """

    SCALE = 8  # stride 32 -> stride 4

    def __init__(self, channels: int, image_channels: int = 3):
        super().__init__()
        self.proj = nn.Conv2d(channels, image_channels * self.SCALE**2, 1)
        self.shuffle = nn.PixelShuffle(self.SCALE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the (N, image_channels, 8H, 8W) reconstruction of an (N, channels, H, W) state."""
        return self.shuffle(self.proj(x))


def upsample2x(x: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour x2 upsampling (kept as one function so every path exports the same op)."""
    return F.interpolate(x, scale_factor=2.0, mode="nearest")
