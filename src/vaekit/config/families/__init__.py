"""Model families' configs, one module per network module of `vaekit.models`.

Importing this package declares every family in `registry.MODEL`; a new family
adds a module here (a `ModelConfig` subclass decorated with `@model_family`) and
imports it below.
"""

# isort: off
# Declaration order is the order in which choice lists and help name the families.
from vaekit.config.families import mlp, conv, hvae, iwae, vq

# isort: on
from vaekit.config.families.base import (
    ModelConfig,
    build_model_config,
    family_class,
    family_fields,
    foreign_fields,
    model_config,
    model_family,
    model_fields,
    not_applicable,
)
from vaekit.config.families.conv import ConvConfig, ResConvConfig
from vaekit.config.families.hvae import HVAEConfig
from vaekit.config.families.iwae import IWAE1LConfig, IWAE2LConfig
from vaekit.config.families.mlp import MLPConfig
from vaekit.config.families.vq import VQConfig, VQPriorConfig

DEFAULT_FAMILY = MLPConfig.name  # the seed notebook's model

__all__ = [
    "DEFAULT_FAMILY",
    "ConvConfig",
    "HVAEConfig",
    "IWAE1LConfig",
    "IWAE2LConfig",
    "MLPConfig",
    "ModelConfig",
    "ResConvConfig",
    "VQConfig",
    "VQPriorConfig",
    "build_model_config",
    "conv",
    "family_class",
    "family_fields",
    "foreign_fields",
    "hvae",
    "iwae",
    "mlp",
    "model_config",
    "model_family",
    "model_fields",
    "not_applicable",
    "vq",
]
