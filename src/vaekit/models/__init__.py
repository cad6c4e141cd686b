"""Model registry: `build_model(config, image_shape)` looks the name up in MODELS."""

from __future__ import annotations

from vaekit.config import ModelConfig
from vaekit.errors import ConfigError
from vaekit.likelihoods import get_likelihood
from vaekit.models import conv, hvae, iwae, mlp, resconv  # noqa: F401  (importing registers them)
from vaekit.models.base import VAE, Latent, VAEOutput
from vaekit.models.registry import MODELS, register

__all__ = ["MODELS", "VAE", "Latent", "VAEOutput", "build_model", "register"]


def build_model(config: ModelConfig, image_shape: tuple[int, int, int]) -> VAE:
    if config.name not in MODELS:
        raise ConfigError(
            f"unknown model {config.name!r}; known models: {', '.join(sorted(MODELS))}"
        )
    likelihood = get_likelihood(config.likelihood, config.sigma)
    return MODELS[config.name](config, tuple(image_shape), likelihood)
