"""vaekit: variational autoencoders that train fast and are measured honestly.

import vaekit
run = vaekit.train(vaekit.RunConfig(), "runs/seed")   # the seed notebook's job
model = vaekit.load(run)                               # or vaekit.load_pretrained("mnist-seed")
images = vaekit.sample(model, 64)                      # (64, 1, 28, 28) in [0, 1]
result = vaekit.evaluate_model(run)                    # test -ELBO, log p(x) (k=5000), FID-MNIST
scores = vaekit.score_data(run, output="scores.csv")   # per example: -log p(x), -ELBO, error
vaekit.plot(run)                                       # latent-space pictures, report.html
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from vaekit._version import __version__
from vaekit.config import (
    DataConfig,
    EvalConfig,
    ModelConfig,
    ObjectiveConfig,
    RunConfig,
    TrainConfig,
    model_config,
)
from vaekit.errors import CheckpointError, ConfigError, DataError, InputError, VaekitError

if TYPE_CHECKING:
    from vaekit.api import (
        decode,
        encode,
        encode_data,
        evaluate_model,
        load,
        load_pretrained,
        plot,
        resume,
        sample_rows,
        score_data,
        train,
        write_samples,
    )
    from vaekit.evaluation.result import EvalResult
    from vaekit.pictures import reconstruct, sample

# The functions that need torch, imported on first use: `import vaekit.config` (and the
# command line's help) must not pay for torch.
_LAZY = {
    **dict.fromkeys(
        ("decode", "encode", "evaluate_model", "load", "load_pretrained", "plot", "resume"),
        "vaekit.api",
    ),
    "train": "vaekit.api",
    **dict.fromkeys(("encode_data", "score_data", "sample_rows", "write_samples"), "vaekit.api"),
    "EvalResult": "vaekit.evaluation.result",
    "reconstruct": "vaekit.pictures",
    "sample": "vaekit.pictures",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'vaekit' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataConfig",
    "DataError",
    "EvalConfig",
    "EvalResult",
    "InputError",
    "ModelConfig",
    "ObjectiveConfig",
    "RunConfig",
    "TrainConfig",
    "VaekitError",
    "__version__",
    "decode",
    "encode",
    "encode_data",
    "evaluate_model",
    "load",
    "load_pretrained",
    "model_config",
    "plot",
    "reconstruct",
    "resume",
    "sample",
    "sample_rows",
    "score_data",
    "train",
    "write_samples",
]
