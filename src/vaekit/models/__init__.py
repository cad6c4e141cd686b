"""Model registry: `build_model(config, image_shape)` looks the name up in MODELS."""

from __future__ import annotations

from vaekit.config import ModelConfig
from vaekit.errors import ConfigError
from vaekit.models import conv, mlp  # noqa: F401  (importing registers them)
from vaekit.models.base import VAE, VAEOutput
from vaekit.models.registry import MODELS, register

__all__ = ["MODELS", "VAE", "VAEOutput", "build_model", "register"]


def build_model(config: ModelConfig, image_shape: tuple[int, int, int]) -> VAE:
    if config.name not in MODELS:
        raise ConfigError(
            f"unknown model {config.name!r}; known models: {', '.join(sorted(MODELS))}"
        )
    return MODELS[config.name](config, tuple(image_shape))
