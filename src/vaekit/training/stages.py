"""A second training stage: a run whose network starts from another run's weights.

A family whose config `starts_from` a run (the VQ-VAE prior: `--model vq-prior
--codes-from RUN`) takes that run's model fields (`adopt`) and the data it was trained
on when the run is created, and its weights (`VAE.warm_start`) when the network is first
built; later checkpoints carry them, so a resume reads nothing of the first run.
"""

from __future__ import annotations

import dataclasses

import torch

from vaekit import checkpoint
from vaekit.config import RunConfig

# The data fields that decide what the first stage saw, copied to the second.
SAME_DATA = ("dataset", "binarize", "image_size", "image_mode")


def adopt_source(config: RunConfig) -> RunConfig:
    """`config` with the model fields and data of the run it starts from (itself if none)."""
    source = config.model.starts_from()
    if source is None:
        return config
    first = checkpoint.load(source).config
    data = dataclasses.replace(config.data, **{k: getattr(first.data, k) for k in SAME_DATA})
    adopted = dataclasses.replace(config, model=config.model.adopt(first.model), data=data)
    adopted.validate()
    return adopted


def source_weights(config: RunConfig) -> dict[str, torch.Tensor] | None:
    """The weights of the run `config` starts from, or None."""
    source = config.model.starts_from()
    return None if source is None else checkpoint.load(source).model_state
