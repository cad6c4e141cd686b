"""vaekit: variational autoencoders that train fast and are measured honestly.

import vaekit
run = vaekit.train(vaekit.RunConfig(), "runs/seed")   # the seed notebook's job
model = vaekit.load(run)                               # or vaekit.load_pretrained("mnist-seed")
images = vaekit.sample(model, 64)                      # (64, 1, 28, 28) in [0, 1]
result = vaekit.evaluate_model(run)                    # test -ELBO, log p(x) (k=5000), FID-MNIST
vaekit.plot(run)                                       # latent-space pictures, report.html
"""

from vaekit._version import __version__
from vaekit.api import decode, encode, evaluate_model, load, load_pretrained, plot, resume, train
from vaekit.config import (
    DataConfig,
    EvalConfig,
    ModelConfig,
    ObjectiveConfig,
    RunConfig,
    TrainConfig,
)
from vaekit.errors import CheckpointError, ConfigError, DataError, VaekitError
from vaekit.pictures import reconstruct, sample

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataConfig",
    "DataError",
    "EvalConfig",
    "ModelConfig",
    "ObjectiveConfig",
    "RunConfig",
    "TrainConfig",
    "VaekitError",
    "__version__",
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
