"""`--format onnx`: encoder.onnx and decoder.onnx, for any batch size, float32.

    encoder.onnx   x (batch, C, H, W) in [0, 1]  ->  mu, logvar (batch, D)      vaekit.encode
    decoder.onnx   z (batch, D)  ->  params (the likelihood's, e.g. Bernoulli logits),
                                     mean (images in [0, 1])                   vaekit.decode

Every registered model exports (tried: mlp, conv, resconv, iwae-1l, iwae-2l, hvae):
their `encode` and `decode` are deterministic feed-forward functions. For the
hierarchical ones (hvae, iwae-2l) decode is what `vaekit.decode` computes, the
lower latent groups at their means given the top one; ancestral sampling, which
draws noise for every group, stays `vaekit sample`'s. A model whose networks do
not trace (one registered by a user, say) is refused with the exporter's reason.
Each file's metadata names the model, its image shape and the vaekit version. A
conditional model's graphs take the labels too, `y` (batch,) int64, after x or z.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from vaekit import api
from vaekit._version import __version__
from vaekit.errors import ConfigError
from vaekit.export.options import ExportOptions
from vaekit.extras import require
from vaekit.files import write_atomic
from vaekit.models import VAE

ENCODER = "encoder.onnx"
DECODER = "decoder.onnx"


class Encoder(nn.Module):
    """x -> (mu, logvar) of q(z|x): the graph of encoder.onnx."""

    def __init__(self, model: VAE) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, x: torch.Tensor, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.encode(x, **self.model.condition(y))


class Decoder(nn.Module):
    """z -> (params of p(x|z), their mean image): the graph of decoder.onnx."""

    def __init__(self, model: VAE) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, z: torch.Tensor, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        params = self.model.decode(z, **self.model.condition(y))
        return params, self.model.likelihood.mean(params)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporter's chatter (deprecations, absent torchvision ops) off the user's screen."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "onnxscript")]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)


def export_graph(
    module: nn.Module,
    example: tuple[torch.Tensor, ...],
    names: tuple[list[str], list[str]],
    path: Path,
) -> Path:
    """One graph with a dynamic batch dimension (shared by its inputs), written
    atomically to `path`."""
    onnx = require("onnx", "onnx", "--format onnx")
    require("onnxscript", "onnx", "--format onnx")  # torch's exporter writes graphs with it
    (inputs, outputs), model = names, module.model
    batch = torch.export.Dim("batch")
    try:
        with _quiet():
            program = torch.onnx.export(
                module,
                example,
                input_names=inputs,
                output_names=outputs,
                dynamic_shapes=tuple({0: batch} for _ in example),
                dynamo=True,
                verbose=False,
            )
            program.optimize()
    except Exception as exc:  # the exporter's own error types vary between torch versions
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"model {model.run_config.model.name} does not export: {first}") from None
    proto = program.model_proto
    onnx.helper.set_model_props(
        proto,
        {
            "vaekit_version": __version__,
            "model": model.run_config.model.name,
            "image_shape": "x".join(str(n) for n in model.image_shape),
            "likelihood": model.run_config.model.likelihood,
        },
    )
    return write_atomic(path, proto.SerializeToString())


def write(source: Path, out: Path, options: ExportOptions) -> list[Path]:
    """encoder.onnx and decoder.onnx of the model in `source`, into the folder `out`."""
    model = api.load(source, "cpu")
    if not model.gaussian_latents:
        raise ConfigError(
            f"model {model.run_config.model.name} has discrete codes, not an encoder to mu and "
            "logvar: export it as --format folder or safetensors"
        )
    out.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(0)
    x = torch.rand((2, *model.image_shape), generator=generator)  # batch 2: 1 would specialise
    z = torch.randn((2, model.latent_dim), generator=generator)
    labels = (torch.tensor([0, model.classes - 1]),) if model.classes else ()
    named = ["y"] if model.classes else []
    return [
        export_graph(
            Encoder(model), (x, *labels), (["x", *named], ["mu", "logvar"]), out / ENCODER
        ),
        export_graph(
            Decoder(model), (z, *labels), (["z", *named], ["params", "mean"]), out / DECODER
        ),
    ]
