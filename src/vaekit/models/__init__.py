"""Model registry: `build_model(config, image_shape)` looks the family up in MODELS."""

from __future__ import annotations

from vaekit.config import ModelConfig
from vaekit.config.registry import MODEL
from vaekit.likelihoods import TableLayout, get_likelihood
from vaekit.models import conv, hvae, iwae, mlp, resconv, vq, vqprior  # noqa: F401  (importing registers them)
from vaekit.models.base import VAE, Latent, VAEOutput
from vaekit.models.latent import attach
from vaekit.models.registry import MODELS, register

__all__ = ["MODELS", "VAE", "Latent", "VAEOutput", "build_model", "register"]


def build_model(
    config: ModelConfig,
    image_shape: tuple[int, int, int],
    layout: TableLayout | tuple | None = None,
) -> VAE:
    """The network of `config`'s family; ConfigError for an unknown or invalid config.

    Tables and vectors come as `image_shape` (1, 1, D) with the `layout` of their
    columns, which the (mixed) likelihood reads: every network, objective and
    estimator keeps its (B, C, H, W) convention."""
    network = MODEL.get(config.name)
    config.validate()
    likelihood = get_likelihood(config.likelihood, config.sigma, layout)
    return attach(network(config, tuple(image_shape), likelihood), config)
