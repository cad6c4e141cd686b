"""A learned prior over a VQ-VAE's code grid: a small causal transformer.

The grid (7 x 7 for MNIST) is read in raster order; the logits at position i depend on
the codes before i only (the inputs are shifted right behind a learned start vector and
attention is masked causally), so p(codes) = prod_i p(c_i | c_<i) and sampling draws the
codes one position at a time. The model holds the trained VQ-VAE, frozen (its weights
taken from the --codes-from run by `warm_start`, then saved in every checkpoint of this
run), so a prior run alone samples, reconstructs and is evaluated: its -ELBO is the
decoder's -log p(x|z_q) plus the prior's -log p(codes).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from vaekit.config import VQConfig, VQPriorConfig
from vaekit.config.families.vq import VQ_FIELDS
from vaekit.likelihoods import Likelihood
from vaekit.models.base import VAE, VAEOutput
from vaekit.models.registry import register
from vaekit.models.vq import VQVAE, with_samples


class Block(nn.Module):
    """A pre-norm transformer layer with causal self-attention; with a `cache` (a list
    holding the keys and values of earlier positions) it takes one new position at a time."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.ff = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, h: torch.Tensor, cache: list[torch.Tensor] | None = None) -> torch.Tensor:
        batch, length, width = h.shape
        q, k, v = (
            t.reshape(batch, length, self.heads, -1).transpose(1, 2)
            for t in self.qkv(self.norm1(h)).split(width, dim=-1)
        )
        if cache is None:
            attended = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:  # the new position sees every cached one and itself: nothing later exists yet
            if cache:
                k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
            cache[:] = [k, v]
            attended = F.scaled_dot_product_attention(q, k, v)
        h = h + self.proj(attended.transpose(1, 2).reshape(batch, length, width))
        return h + self.ff(self.norm2(h))


class CodePrior(nn.Module):
    """Causal transformer: one-hot codes (B, L, K) -> logits (B, L, K) of each position
    given the positions before it (inputs shifted right behind a learned start vector)."""

    def __init__(self, size: int, positions: int, width: int, layers: int, heads: int) -> None:
        super().__init__()
        self.size, self.positions = size, positions
        self.embed = nn.Linear(size, width, bias=False)
        self.start = nn.Parameter(torch.zeros(width))
        self.position = nn.Parameter(0.02 * torch.randn(positions, width))
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, size)

    def forward(self, onehot: torch.Tensor) -> torch.Tensor:
        batch, length, _ = onehot.shape
        tokens = self.embed(onehot[:, :-1])
        start = self.start.to(tokens.dtype).expand(batch, 1, -1)
        h = torch.cat([start, tokens], dim=1) + self.position[:length].to(tokens.dtype)
        for block in self.blocks:
            h = block(h)
        return self.head(self.norm(h))

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n code sequences (n, positions), drawn position by position; each step feeds one
        new position through the layers, reusing the keys and values of the earlier ones."""
        device = self.head.weight.device
        caches: list[list[torch.Tensor]] = [[] for _ in self.blocks]
        codes = torch.zeros(n, self.positions, dtype=torch.long, device=device)
        h = self.start.expand(n, 1, -1)
        for i in range(self.positions):
            h = h + self.position[i]
            for block, cache in zip(self.blocks, caches, strict=True):
                h = block(h, cache)
            probs = self.head(self.norm(h))[:, 0].float().softmax(dim=-1)
            codes[:, i] = torch.multinomial(probs, 1, generator=generator)[:, 0]
            h = self.embed.weight.t()[codes[:, i]][:, None]  # the embedding of its one-hot
        return codes


@register(VQPriorConfig)
class VQPrior(VAE):
    """A causal transformer over a trained VQ-VAE's codes; samples decode to new images."""

    gaussian_latents = False
    explorer_note = VQVAE.explorer_note

    def __init__(
        self, config: VQPriorConfig, image_shape: tuple[int, int, int], likelihood: Likelihood
    ) -> None:
        vq = VQVAE(VQConfig(**{k: getattr(config, k) for k in VQ_FIELDS}), image_shape, likelihood)
        super().__init__(image_shape, vq.latent_dim, likelihood)
        self.vq = vq.requires_grad_(False)
        self.prior_net = CodePrior(
            config.codebook_size,
            vq.positions,
            config.prior_width,
            config.prior_layers,
            config.prior_heads,
        )

    @property
    def noise_dim(self) -> int:
        return 0

    def train(self, mode: bool = True) -> VQPrior:
        """The VQ-VAE stays in eval mode: frozen, its codebook takes no EMA steps."""
        super().train(mode)
        self.vq.eval()
        return self

    def warm_start(self, state: dict[str, torch.Tensor]) -> None:
        self.vq.load_state_dict(state)

    def forward(
        self,
        x: torch.Tensor,
        generator: torch.Generator | None = None,
        noise: torch.Tensor | None = None,
        k: int | None = None,
        y: torch.Tensor | None = None,
    ) -> VAEOutput:
        """The frozen VQ-VAE's codes and p(x|z_q); the prior's logits of those codes."""
        with torch.no_grad():
            codes = self.vq.quantise(x)
            params = self.vq.decoder(codes.z_q)
        batch, height, width = codes.indices.shape
        onehot = nn.functional.one_hot(codes.indices.reshape(batch, -1), codes.size)
        logits = self.prior_net(onehot.to(params.dtype))
        codes.prior_logits = logits.transpose(1, 2).reshape(batch, codes.size, height, width)
        return VAEOutput([], with_samples(params, k), codes)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.vq.encode(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.vq.decode(z)

    def generate(
        self, n: int, generator: torch.Generator | None = None, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Codes drawn ancestrally from the learned prior, decoded."""
        codes = self.prior_net.sample(n, generator)
        return self.vq.decode_indices(codes.reshape(n, *self.vq.grid_shape[1:]))

    def reconstruct(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.vq.reconstruct(x)
