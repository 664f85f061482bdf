"""Small building blocks of RevCol: normalisation, per-channel scales, DropPath and the ConvNeXt-style block.

Everything here works on channels-first (N, C, H, W) tensors, so no block needs a permute, and every module
traces and exports as plain PyTorch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ("LayerNorm2d", "ChannelScale", "ReversibleScale", "DropPath", "ConvNeXtBlock")


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channel dimension of an (N, C, H, W) tensor, statistics computed in float32.

    Subclassing ``nn.LayerNorm`` keeps the affine parameters in the optimizer's no-decay group wherever norms are
    grouped by class (Ultralytics does). Statistics are taken in float32 because under fp16/bf16 they lose enough
    precision to spoil the reversible reconstruction; the result is cast back to the input dtype.

    Args:
        channels (int): Number of channels C.
        eps (float): Added to the variance for numerical stability.
    """

    def __init__(self, channels: int, eps: float = 1e-6):
        """Initialise weight to ones and bias to zeros, shaped (C,)."""
        super().__init__(channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise each pixel's channel vector.

        Args:
            x (torch.Tensor): Input of shape (N, C, H, W).

        Returns:
            (torch.Tensor): Normalised tensor, same shape and dtype as ``x``.
        """
        y = x.float()
        centred = y - y.mean(1, keepdim=True)  # computed once: autograd would save two copies otherwise
        y = centred * torch.rsqrt(centred.pow(2).mean(1, keepdim=True) + self.eps)
        y = y * self.weight.float().view(-1, 1, 1) + self.bias.float().view(-1, 1, 1)
        return y.to(x.dtype)


class ChannelScale(nn.LayerNorm):
    """Learnable per-channel multiplier ``x * weight`` for (N, C, H, W) tensors (ConvNeXt's layer scale).

    It performs no normalisation. It derives from ``nn.LayerNorm`` only so that optimizers which group parameters
    by normalisation class (Ultralytics' ``build_optimizer``) keep this 1-D scale out of weight decay, like a
    norm's gain; its weight is 1-D, so MuSGD never treats it as a matrix.

    Args:
        channels (int): Number of channels C.
        init_value (float): Initial value of every channel's scale.
    """

    def __init__(self, channels: int, init_value: float = 1.0):
        """Create the (C,) scale filled with ``init_value``."""
        super().__init__(channels, bias=False)
        nn.init.constant_(self.weight, init_value)
        self.init_value = init_value

    def scale(self) -> torch.Tensor:
        """Return the per-channel factor actually applied, shaped (C,)."""
        return self.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Multiply every channel of ``x`` (N, C, H, W) by its scale."""
        return x * self.scale().view(-1, 1, 1).to(x.dtype)

    def extra_repr(self) -> str:
        """Show channels and initial value in ``print(model)``."""
        return f"{self.normalized_shape[0]}, init_value={self.init_value}"


class ReversibleScale(ChannelScale):
    """The reversible connection's alpha: a per-channel scale kept at least ``min_abs`` away from zero.

    The reverse pass divides by alpha, so its magnitude is bounded below while its sign is kept. The bound is a
    straight-through clamp computed on the fly (no in-place writes), so gradients still reach the raw weight and
    can move it back out of the clamped band, and the module stays traceable.

    Args:
        channels (int): Number of channels C.
        init_value (float): Initial alpha (0.5 in RevCol).
        min_abs (float): Smallest magnitude alpha may take.
    """

    def __init__(self, channels: int, init_value: float = 0.5, min_abs: float = 1e-3):
        """Create alpha, shaped (C,), filled with ``init_value``."""
        super().__init__(channels, init_value)
        self.min_abs = min_abs

    def scale(self) -> torch.Tensor:
        """Return alpha with |alpha| >= min_abs (sign kept; exactly 0 maps to +min_abs), shaped (C,)."""
        raw = self.weight
        magnitude = raw.abs().clamp_min(self.min_abs)
        safe = torch.where(raw < 0, -magnitude, magnitude)
        return raw + (safe - raw).detach()  # straight-through: forward uses `safe`, gradient flows to `raw`

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """Undo ``forward``: return ``y / alpha`` per channel, computed in ``y``'s dtype."""
        return y / self.scale().view(-1, 1, 1).to(y.dtype)


class DropPath(nn.Module):
    """Stochastic depth: zero a whole residual branch per sample with probability ``p`` while training.

    Args:
        p (float): Drop probability in [0, 1).
    """

    def __init__(self, p: float = 0.0):
        """Store the drop probability."""
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
        """Show the drop probability."""
        return f"p={self.p:.3f}"


class ConvNeXtBlock(nn.Module):
    """ConvNeXt-style residual block with RevCol's small kernel, all channels-first.

    depthwise kxk conv -> LayerNorm -> 1x1 conv C->rC -> GELU -> 1x1 conv rC->C -> layer scale -> DropPath,
    added to the input. 1x1 convolutions are the channels-first form of ConvNeXt's Linear layers.

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
        """Build the block's layers."""
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
        """Apply the residual block.

        Args:
            x (torch.Tensor): Input of shape (N, C, H, W).

        Returns:
            (torch.Tensor): Output of the same shape.
        """
        y = self.pwconv2(self.act(self.pwconv1(self.norm(self.dwconv(x)))))
        return x + self.drop_path(self.gamma(y))


def upsample2x(x: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour x2 upsampling (kept as one function so every path exports the same op)."""
    return F.interpolate(x, scale_factor=2.0, mode="nearest")
