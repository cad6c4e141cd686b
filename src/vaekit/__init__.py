"""vaekit: variational autoencoders that train fast and are measured honestly.

import vaekit
run = vaekit.train(vaekit.RunConfig(), "runs/seed")   # the seed notebook's job
model = vaekit.load(run)                               # or vaekit.load_pretrained("mnist-seed")
images = vaekit.sample(model, 64)                      # (64, 1, 28, 28) in [0, 1]
result = vaekit.evaluate_model(run)                    # test -ELBO, log p(x) (k=5000), FID-MNIST
vaekit.plot(run)                                       # latent-space pictures, report.html
"""

from vaekit.api import decode, encode, evaluate_model, load, load_pretrained, plot, resume, train
from vaekit.config import (
    DataConfig,
    EvalConfig,
    ModelConfig,
    ObjectiveConfig,
    RunConfig,
    TrainConfig,
)
from vaekit.errors import CheckpointError, ConfigError, DataError, InputError, VaekitError
from vaekit.evaluation.result import EvalResult
from vaekit.pictures import reconstruct, sample

__version__ = "0.1.0"

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
    "decode",
    "encode",
    "evaluate_model",
    "load",
    "load_pretrained",
    "plot",
    "reconstruct",
    "resume",
    "sample",
    "train",
]
