"""What every model provides: q(z|x) as (mean, log-variance) and p(x|z) as logits.

Models hold no loss code: objectives take these tensors and score them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class VAEOutput:
    """One pass through a VAE; shapes: mu/logvar/z (B, D), logits (B, C, H, W)."""

    mu: torch.Tensor
    logvar: torch.Tensor
    z: torch.Tensor
    logits: torch.Tensor


class VAE(nn.Module):
    """A Gaussian-posterior VAE with a standard-normal prior."""

    run_config = None  # the RunConfig a loaded model was trained with

    def __init__(self, image_shape: tuple[int, int, int], latent_dim: int) -> None:
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.latent_dim = latent_dim

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, C, H, W) in [0, 1] -> mean and log-variance of q(z|x), each (B, D)."""
        raise NotImplementedError

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, D) -> Bernoulli logits of p(x|z), (B, C, H, W)."""
        raise NotImplementedError

    @staticmethod
    def reparameterize(
        mu: torch.Tensor,
        logvar: torch.Tensor,
        generator: torch.Generator | None = None,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """z = mu + sigma * eps (Kingma & Welling 2014, section 2.4), eps ~ N(0, I).

        `noise` supplies eps drawn beforehand (see `noise`); else it is drawn here.
        """
        if noise is None:
            noise = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + noise * torch.exp(0.5 * logvar)

    def noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """The eps a forward pass on n examples consumes, leading dimension n.

        Drawing it outside the model lets data-parallel training draw one global
        batch's noise on every rank and hand each rank its slice.
        """
        device = next(self.parameters()).device
        return torch.randn(n, self.latent_dim, generator=generator, device=device)

    def forward(
        self,
        x: torch.Tensor,
        generator: torch.Generator | None = None,
        noise: torch.Tensor | None = None,
    ) -> VAEOutput:
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar, generator, noise)
        return VAEOutput(mu, logvar, z, self.decode(z))

    def prior_sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        device = next(self.parameters()).device
        return torch.randn(n, self.latent_dim, generator=generator, device=device)
