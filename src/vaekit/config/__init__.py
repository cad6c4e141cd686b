"""Run configuration as dataclasses, a leaf of the import graph.

This package imports nothing of vaekit but `vaekit.errors`, and no torch, so the
command line can list every choice without loading a model. It owns:

- `registry`: the one list of names of each kind (models, likelihoods, schedules,
  objectives, datasets, precisions, ...); implementing modules register into it.
- `fields`: field declaration, coercion of JSON/TOML/CLI values, value checks.
- `sections`: the data, objective and training sections, and evaluation's config.
- `families`: one config class per model family, chosen by `model.name`.
- `run`: `RunConfig`, loading and saving, overrides; `flags`: the CLI's options;
  `migrate`: older saved layouts brought to today's.
"""

from vaekit.config import registry
from vaekit.config.families import (
    ConvConfig,
    HVAEConfig,
    IWAE1LConfig,
    IWAE2LConfig,
    MLPConfig,
    ModelConfig,
    ResConvConfig,
    VQConfig,
    VQPriorConfig,
    family_class,
    family_fields,
    model_config,
    model_family,
)
from vaekit.config.fields import check_values, coerce, flag_name
from vaekit.config.run import RunConfig, apply_overrides, config_fields, section_of
from vaekit.config.sections import (
    DataConfig,
    EvalConfig,
    ObjectiveConfig,
    TrainConfig,
    check_dataset_name,
)

__all__ = [
    "ConvConfig",
    "DataConfig",
    "EvalConfig",
    "HVAEConfig",
    "IWAE1LConfig",
    "IWAE2LConfig",
    "MLPConfig",
    "ModelConfig",
    "ObjectiveConfig",
    "ResConvConfig",
    "RunConfig",
    "TrainConfig",
    "VQConfig",
    "VQPriorConfig",
    "apply_overrides",
    "check_dataset_name",
    "check_values",
    "coerce",
    "config_fields",
    "family_class",
    "family_fields",
    "flag_name",
    "model_config",
    "model_family",
    "registry",
    "section_of",
]
