"""Building blocks shared by the residual and hierarchical models."""

from __future__ import annotations

import torch
from torch import nn

# Residual branches start at this fraction of their default initial weights, so a deep
# stack starts close to the identity (as VDVAE scales its last layer by 1/sqrt(depth)).
BRANCH_INIT_SCALE = 0.1


class ResidualCell(nn.Module):
    """x + f(x), f = layer(SiLU(layer(SiLU(x)))), with dense or 3x3 convolutional layers."""

    def __init__(self, width: int, conv: bool = False) -> None:
        super().__init__()

        def layer() -> nn.Module:
            return nn.Conv2d(width, width, 3, padding=1) if conv else nn.Linear(width, width)

        self.branch = nn.Sequential(nn.SiLU(), layer(), nn.SiLU(), layer())
        with torch.no_grad():
            self.branch[-1].weight.mul_(BRANCH_INIT_SCALE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.branch(x)


def soft_clamp(logvar: torch.Tensor, bound: float = 10.0) -> torch.Tensor:
    """bound * tanh(logvar / bound): keeps log-variances in (-bound, bound) with a gradient
    everywhere (NVAE's soft clamp), so one bad step cannot send exp(logvar) to inf or 0."""
    return bound * torch.tanh(logvar / bound)


def gaussian_params(t: torch.Tensor, dim: int = -1) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a layer's output into a mean and a soft-clamped log-variance."""
    mu, logvar = t.chunk(2, dim=dim)
    return mu, soft_clamp(logvar)
