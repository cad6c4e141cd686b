"""A hierarchical VAE with top-down inference (Ladder VAE, Sønderby et al. 2016; the
structure NVAE and VDVAE scale up), sized for a CPU: dense residual cells.

Bottom-up, the image passes through `groups` residual cells; each cell's output
feeds one latent group, the deepest feeding the top. Top-down, a learned state h
starts at the top; for each group g (top first):

    prior      p(z_g | z_<g) = N(mu_p, var_p) from h        (group 0: N(0, I))
    posterior  q(z_g | x, z_<g) = N(mu_q, var_q) from [h, bottom-up feature g]
    h          <- cell(h + W z_g)

The top-down path is shared by inference and generation (the generator is the
prior path with z drawn from p), so each group's KL(q || p) is in closed form
given the groups above it, reported per group. Width `hidden_dim`, `groups`
groups of `latent_dim` units each.

With `--prior vamp` the top group's prior is a VampPrior over the top group's
posterior at learned pseudo-inputs (its KL then estimated from the sample); with
`--condition label` the one-hot label joins the image at the stem and the top
group's z where it enters the top-down path, so every group's prior and the
generator see it. Bad updates are skipped by the train loop's
--skip-grad-norm, as VDVAE does.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from vaekit.config import HVAEConfig
from vaekit.likelihoods import Likelihood
from vaekit.models.base import VAE, Latent, VAEOutput
from vaekit.models.blocks import ResidualCell, gaussian_params
from vaekit.models.export import Op, add, linear, module_ops, reshape
from vaekit.models.registry import register
from vaekit.objectives import gaussian_log_prob

Params = tuple[torch.Tensor, torch.Tensor] | None
# pick(group, posterior params or None, prior params or None) -> z for that group
Pick = Callable[[int, Params, Params], torch.Tensor]


class TopDownBlock(nn.Module):
    """One latent group of the top-down path: its prior, posterior and update of h."""

    def __init__(self, width: int, latent: int, top: bool, classes: int = 0) -> None:
        super().__init__()
        self.prior = None if top else nn.Linear(width, 2 * latent)
        self.posterior = nn.Linear(2 * width, 2 * latent)
        self.project = nn.Linear(latent + (classes if top else 0), width)
        self.cell = ResidualCell(width)


@register(HVAEConfig)
class HierarchicalVAE(VAE):
    """Top-down hierarchical VAE: `groups` latent groups, dense residual cells."""

    explorer_note = (
        "The map and sliders set the top latent group; each lower group sits at its "
        "prior's mean given the groups above (as decode sets them, no sampling), and the "
        "image is the mean of p(x|z) there."
    )

    def __init__(
        self, config: HVAEConfig, image_shape: tuple[int, int, int], likelihood: Likelihood
    ) -> None:
        super().__init__(image_shape, config.latent_dim, likelihood)
        width, self.groups = config.hidden_dim, config.groups
        self.classes = config.labels if config.condition == "label" else 0
        self.stem = nn.Linear(math.prod(image_shape) + self.classes, width)
        self.bottom_up = nn.ModuleList(ResidualCell(width) for _ in range(self.groups))
        self.h_top = nn.Parameter(torch.zeros(width))
        self.blocks = nn.ModuleList(
            TopDownBlock(width, config.latent_dim, g == 0, self.classes) for g in range(self.groups)
        )
        self.head = nn.Sequential(
            ResidualCell(width), nn.SiLU(), nn.Linear(width, math.prod(self.output_shape))
        )

    @property
    def noise_dim(self) -> int:
        return self.groups * self.latent_dim

    def features(self, x: torch.Tensor, y: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Bottom-up features, ordered as the top-down groups use them (deepest first)."""
        h = self.stem(self.with_label(x.flatten(1), y))
        out = []
        for cell in self.bottom_up:
            h = cell(h)
            out.append(h)
        return out[::-1]

    def top_down(
        self,
        n: int,
        feats: list[torch.Tensor] | None,
        pick: Pick,
        y: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, list[Latent]]:
        """Run the top-down path for n examples; `pick` chooses each group's z; a
        conditional model's labels y (n,) join the top group's z."""
        h = self.h_top.expand(n, -1)
        latents = []
        for g, block in enumerate(self.blocks):
            prior = None if block.prior is None else gaussian_params(block.prior(h))
            posterior = None
            if feats is not None:
                posterior = gaussian_params(block.posterior(torch.cat([h, feats[g]], dim=-1)))
            z = pick(g, posterior, prior)
            if posterior is not None:
                latents.append(self._latent(z, posterior, prior))
            h = block.cell(h + block.project(self.with_label(z, y) if g == 0 else z))
        return self.head(h).view(n, *self.output_shape), latents

    def _latent(self, z: torch.Tensor, posterior: Params, prior: Params) -> Latent:
        """A group's record; the top group under a VampPrior carries log q and log p at z
        (the mixture has no closed-form KL)."""
        if prior is None and self.prior is not None:
            log_q = gaussian_log_prob(z, *posterior)
            log_p = self.prior.log_prob(z, self.encode)
            return Latent(z, *posterior, log_q=log_q, log_p=log_p, analytic_kl=False)
        p_mu, p_logvar = prior if prior is not None else (None, None)
        return Latent(z, *posterior, p_mu, p_logvar)

    def _group_noise(self, noise: torch.Tensor, g: int) -> torch.Tensor:
        return noise[:, g * self.latent_dim : (g + 1) * self.latent_dim]

    def forward(
        self,
        x: torch.Tensor,
        generator: torch.Generator | None = None,
        noise: torch.Tensor | None = None,
        k: int | None = None,
        y: torch.Tensor | None = None,
    ) -> VAEOutput:
        batch, feats = x.shape[0], self.features(x, y)
        n = batch if k is None else batch * k
        if k is not None:  # the bottom-up pass runs once; its features serve all k samples
            feats = [f.repeat_interleave(k, dim=0) for f in feats]
            y = None if y is None else y.repeat_interleave(k)
        if noise is None:
            noise = self.noise(batch, k, generator)
        noise = noise.reshape(n, self.noise_dim).to(feats[0].dtype)

        def sample_posterior(g: int, posterior: Params, prior: Params) -> torch.Tensor:
            mu, logvar = posterior
            return self.reparameterize(mu, logvar, noise=self._group_noise(noise, g))

        params, latents = self.top_down(n, feats, sample_posterior, y)
        if k is not None:
            params = params.unflatten(0, (batch, k))
            latents = [_unflatten_latent(latent, batch, k) for latent in latents]
        return VAEOutput(latents, params)

    def encode(
        self, x: torch.Tensor, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The top group's posterior: what the latent plots show (and a VampPrior's
        components, at its pseudo-inputs)."""
        h = self.h_top.expand(x.shape[0], -1)
        top = self.features(x, y)[0]
        return gaussian_params(self.blocks[0].posterior(torch.cat([h, top], -1)))

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The top group at z, every lower group at its prior mean."""

        def pick(g: int, posterior: Params, prior: Params) -> torch.Tensor:
            return z if g == 0 else prior[0]

        return self.top_down(z.shape[0], None, pick, y)[0]

    def decoder_ops(self) -> list[Op]:
        """`decode` as operations: h = h_top + W z, each lower group's prior mean fed
        back into h (push h, mean, projection, add_pop), then the head."""
        top = self.blocks[0]
        ops = [linear(top.project), add(self.h_top), *module_ops(top.cell)]
        mean = slice(0, self.latent_dim)  # gaussian_params' first half
        for block in self.blocks[1:]:
            to_z = [linear(block.prior, rows=mean), linear(block.project)]
            ops += [{"op": "push"}, *to_z, {"op": "add_pop"}, *module_ops(block.cell)]
        return [*ops, *module_ops(self.head), reshape(self.output_shape)]

    def generate(
        self, n: int, generator: torch.Generator | None = None, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Ancestral sampling: each group drawn from its prior given the groups above (the
        top one from N(0, I) or the VampPrior); labels y (n,) uniform when not given."""
        top = None if self.prior is None else self.prior.sample(n, self.encode, generator)
        return self.generate_from(top, generator, y, n)

    def generate_from(
        self,
        top: torch.Tensor | None,
        generator: torch.Generator | None = None,
        y: torch.Tensor | None = None,
        n: int | None = None,
    ) -> torch.Tensor:
        """Ancestral sampling below a given top group (None: from N(0, I), n draws)."""
        n = top.shape[0] if top is not None else n
        noise = self.noise(n, generator=generator)
        if self.classes and y is None:
            y = torch.randint(self.classes, (n,), generator=generator, device=noise.device)

        def pick(g: int, posterior: Params, prior: Params) -> torch.Tensor:
            eps = self._group_noise(noise, g)
            if prior is None:
                return eps if top is None else top.to(eps.dtype)
            return self.reparameterize(*prior, noise=eps)

        return self.top_down(n, None, pick, y)[0]

    def reconstruct(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Every group at its posterior mean given the groups above."""

        def pick(g: int, posterior: Params, prior: Params) -> torch.Tensor:
            return posterior[0]

        return self.top_down(x.shape[0], self.features(x, y), pick, y)[0]


def _unflatten_latent(latent: Latent, batch: int, k: int) -> Latent:
    def split(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else t.unflatten(0, (batch, k))

    return Latent(
        split(latent.z),
        split(latent.q_mu),
        split(latent.q_logvar),
        split(latent.p_mu),
        split(latent.p_logvar),
        latent.analytic_kl,
        split(latent.log_q),
        split(latent.log_p),
    )
