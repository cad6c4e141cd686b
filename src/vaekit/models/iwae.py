"""The IWAE paper's MNIST networks (Burda, Grosse & Salakhutdinov 2015, section 5).

iwae-1l: x -> 200 -> 200 (tanh) -> z (50) -> 200 -> 200 (tanh) -> x.
iwae-2l: x -> 100 -> 100 -> z1 (100) -> 50 -> 50 -> z2 (50), and back down through
p(z1|z2) and p(x|z1); deterministic layers tanh. With the presets' sizes; here
`hidden_dim` is the first deterministic width and `latent_dim` the top latent's
size (the 2-layer net halves the one and doubles the other for its middle).
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn

from vaekit.config import IWAE1LConfig, IWAE2LConfig
from vaekit.likelihoods import Likelihood
from vaekit.models.base import VAE, Latent, VAEOutput
from vaekit.models.export import Op, linear, module_ops, reshape
from vaekit.models.registry import register


def tanh_mlp(sizes: list[int]) -> nn.Sequential:
    """Linear + tanh for each consecutive pair of sizes."""
    layers: list[nn.Module] = []
    for n_in, n_out in itertools.pairwise(sizes):
        layers += [nn.Linear(n_in, n_out), nn.Tanh()]
    return nn.Sequential(*layers)


class GaussianLayer(nn.Module):
    """Two tanh layers, then the mean and log-variance of a diagonal Gaussian."""

    def __init__(self, n_in: int, hidden: int, n_out: int) -> None:
        super().__init__()
        self.body = tanh_mlp([n_in, hidden, hidden])
        self.mu = nn.Linear(hidden, n_out)
        self.logvar = nn.Linear(hidden, n_out)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x)
        return self.mu(h), self.logvar(h)


@register(IWAE1LConfig)
class IWAE1L(VAE):
    """One stochastic layer: q(z|x) and p(x|z) each through two tanh layers."""

    def __init__(
        self, config: IWAE1LConfig, image_shape: tuple[int, int, int], likelihood: Likelihood
    ) -> None:
        super().__init__(image_shape, config.latent_dim, likelihood)
        self.classes = config.labels if config.condition == "label" else 0
        pixels, hidden = math.prod(image_shape), config.hidden_dim
        self.encoder = GaussianLayer(pixels + self.classes, hidden, config.latent_dim)
        self.decoder = nn.Sequential(
            *tanh_mlp([config.latent_dim + self.classes, hidden, hidden]),
            nn.Linear(config.hidden_dim, math.prod(self.output_shape)),
        )

    def encode(
        self, x: torch.Tensor, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoder(self.with_label(x.flatten(1), y))

    @property
    def context_dim(self) -> int:
        return self.encoder.mu.in_features

    def encode_context(
        self, x: torch.Tensor, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ...]:
        h = self.encoder.body(self.with_label(x.flatten(1), y))
        return self.encoder.mu(h), self.encoder.logvar(h), h

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.decoder(self.with_label(z, y)).view(-1, *self.output_shape)

    def decoder_ops(self) -> list[Op]:
        return [*module_ops(self.decoder), reshape(self.output_shape)]


@register(IWAE2LConfig)
class IWAE2L(VAE):
    """Two stochastic layers: q(z1|x) q(z2|z1), p(z2) p(z1|z2) p(x|z1).

    Inference runs bottom-up, so z1's prior p(z1|z2) depends on a sample drawn
    after z1: its KL is estimated from the sample (`Latent.analytic_kl` False),
    while z2's, against N(0, I), is in closed form.
    """

    explorer_note = (
        "The map and sliders set z2, the top layer; z1 is its prior's mean E[z1|z2] (as "
        "decode sets it), and the image is the mean of p(x|z1)."
    )

    def __init__(
        self, config: IWAE2LConfig, image_shape: tuple[int, int, int], likelihood: Likelihood
    ) -> None:
        super().__init__(image_shape, config.latent_dim, likelihood)
        self.z1_dim, self.z2_dim = 2 * config.latent_dim, config.latent_dim
        wide, narrow = config.hidden_dim, max(1, config.hidden_dim // 2)
        self.q_z1 = GaussianLayer(math.prod(image_shape), wide, self.z1_dim)
        self.q_z2 = GaussianLayer(self.z1_dim, narrow, self.z2_dim)
        self.p_z1 = GaussianLayer(self.z2_dim, narrow, self.z1_dim)
        self.p_x = nn.Sequential(
            *tanh_mlp([self.z1_dim, wide, wide]), nn.Linear(wide, math.prod(self.output_shape))
        )

    @property
    def noise_dim(self) -> int:
        return self.z1_dim + self.z2_dim

    def forward(
        self,
        x: torch.Tensor,
        generator: torch.Generator | None = None,
        noise: torch.Tensor | None = None,
        k: int | None = None,
    ) -> VAEOutput:
        mu1, logvar1 = self.q_z1(x.flatten(1))
        if k is not None:
            mu1, logvar1 = self.with_sample_dim(mu1, logvar1)
        if noise is None:
            noise = self.noise(x.shape[0], k, generator)
        eps1, eps2 = noise.to(mu1.dtype).split([self.z1_dim, self.z2_dim], dim=-1)
        z1 = self.reparameterize(mu1, logvar1, noise=eps1)
        mu2, logvar2 = self.q_z2(z1)
        z2 = self.reparameterize(mu2, logvar2, noise=eps2)
        p_mu1, p_logvar1 = self.p_z1(z2)
        params = self.p_x(z1)
        params = params.view(*params.shape[:-1], *self.output_shape)
        return VAEOutput(
            [
                Latent(z2, mu2, logvar2),
                Latent(z1, mu1, logvar1, p_mu1, p_logvar1, analytic_kl=False),
            ],
            params,
        )

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z2 | z1 = E[z1|x]): the top layer's posterior, which the latent plots show."""
        mu1, _ = self.q_z1(x.flatten(1))
        return self.q_z2(mu1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z2 -> p(x | z1 = E[z1|z2])."""
        mu1, _ = self.p_z1(z)
        return self.p_x(mu1).view(-1, *self.output_shape)

    def decoder_ops(self) -> list[Op]:
        to_z1 = [*module_ops(self.p_z1.body), linear(self.p_z1.mu)]
        return [*to_z1, *module_ops(self.p_x), reshape(self.output_shape)]

    def generate(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Ancestral sampling: z2 ~ N(0, I), z1 ~ p(z1|z2), then p(x|z1)'s parameters."""
        return self.generate_from(self.prior_sample(n, generator), generator)

    def generate_from(
        self, z: torch.Tensor, generator: torch.Generator | None = None, y: None = None
    ) -> torch.Tensor:
        """z2 given, z1 ~ p(z1|z2), then p(x|z1)'s parameters."""
        mu1, logvar1 = self.p_z1(z)
        eps = torch.randn(mu1.shape, generator=generator, device=mu1.device, dtype=mu1.dtype)
        return self.p_x(self.reparameterize(mu1, logvar1, noise=eps)).view(-1, *self.output_shape)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """p(x | z1 = E[z1|x]): the first layer's posterior mean."""
        mu1, _ = self.q_z1(x.flatten(1))
        return self.p_x(mu1).view(-1, *self.output_shape)
