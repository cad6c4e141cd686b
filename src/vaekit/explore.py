"""The latent explorer: a static web page that decodes latent points in the browser.

`write_explorer` writes, into one folder,
    index.html, explorer.js, style.css   the page (package data, copied as they are)
    data.js                               the decoder's weights and the test set's latent
                                          means, assigned to `window.VAEKIT_EXPLORER`
and `serve` serves that folder on localhost. The page needs no server and no network:
opened from disk (file://), Chromium refuses fetch() of local files but runs a local
<script src>, so the data travel as a script rather than as .bin/.json files.

The decoder is described as a short list of operations (linear, relu, tanh, silu,
reshape, conv2d, conv_transpose2d, and push/add_pop for residual connections) over
named float32 tensors; explorer.js interprets that list, then applies the sigmoid
that turns the decoder's logits into pixel means.
"""

from __future__ import annotations

import base64
import functools
import http.server
import json
import shutil
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vaekit import api, checkpoint
from vaekit.data import class_names, evaluation_images, to_unit
from vaekit.errors import ConfigError, VaekitError
from vaekit.evaluation.estimate import posterior_parameters
from vaekit.models import VAE
from vaekit.models.blocks import ResidualCell
from vaekit.runfolder import MODEL_WEIGHTS, RunFolder

ASSETS = ("index.html", "explorer.js", "style.css")
DATA_FILE = "data.js"
DEFAULT_POINTS = 5000


# ------------------------------------------------------------ the decoder as data


def _op(name: str, module: nn.Module) -> dict[str, Any]:
    """One layer as a JSON-ready operation; its tensors are named by state-dict key."""
    if isinstance(module, nn.Linear):
        return {"op": "linear", "weight": f"{name}.weight", "bias": f"{name}.bias"}
    if isinstance(module, nn.ReLU):
        return {"op": "relu"}
    if isinstance(module, nn.Tanh):
        return {"op": "tanh"}
    if isinstance(module, nn.SiLU):
        return {"op": "silu"}
    if isinstance(module, nn.Unflatten):
        return {"op": "reshape", "shape": list(module.unflattened_size)}
    kinds = {nn.Conv2d: "conv2d", nn.ConvTranspose2d: "conv_transpose2d"}
    if type(module) in kinds and _plain_conv(module):
        return {
            "op": kinds[type(module)],
            "weight": f"{name}.weight",  # conv2d (out, in, k, k); conv_transpose2d (in, out, k, k)
            "bias": f"{name}.bias",
            "stride": module.stride[0],
            "padding": module.padding[0],
        }
    raise ConfigError(f"the explorer cannot run {module!r} in the browser (layer {name!r})")


def _plain_conv(module: nn.Conv2d | nn.ConvTranspose2d) -> bool:
    """A (transposed) convolution explorer.js can run: square stride and padding, zeros,
    one group, no dilation or output padding, a bias."""
    return (
        getattr(module, "output_padding", (0, 0)) == (0, 0)
        and module.groups == 1
        and module.dilation == (1, 1)
        and module.padding_mode == "zeros"
        and isinstance(module.padding, tuple)
        and module.stride[0] == module.stride[1]
        and module.padding[0] == module.padding[1]
        and module.bias is not None
    )


def _sequence_ops(prefix: str, sequence: nn.Module) -> list[dict[str, Any]]:
    """A Sequential's layers as operations; a residual cell x + f(x) becomes
    push (keep x), f's layers, add_pop (add the kept x)."""
    ops: list[dict[str, Any]] = []
    for name, module in sequence.named_children():
        if isinstance(module, ResidualCell):
            ops += [{"op": "push"}, *_sequence_ops(f"{prefix}{name}.branch.", module.branch)]
            ops.append({"op": "add_pop"})
        else:
            ops.append(_op(f"{prefix}{name}", module))
    return ops


def _mlp_ops(model: VAE) -> list[dict[str, Any]]:
    # MLPVAE.decode: relu(fc3(z)) -> fc4 -> view as an image.
    layers = [("fc3", model.fc3), ("", nn.ReLU()), ("fc4", model.fc4)]
    return [_op(name, m) for name, m in layers] + [
        {"op": "reshape", "shape": list(model.image_shape)}
    ]


def _conv_ops(model: VAE) -> list[dict[str, Any]]:
    return _sequence_ops("decoder.", model.decoder)


def _iwae_1l_ops(model: VAE) -> list[dict[str, Any]]:
    # IWAE1L.decode: two tanh layers, a linear layer, then view as an image.
    return [*_conv_ops(model), {"op": "reshape", "shape": list(model.output_shape)}]


def _iwae_2l_ops(model: VAE) -> list[dict[str, Any]]:
    # IWAE2L.decode: z2 -> E[z1|z2] (p_z1's tanh body and mean layer) -> p(x|z1).
    body = [_op(f"p_z1.body.{name}", m) for name, m in model.p_z1.body.named_children()]
    to_x = [_op(f"p_x.{name}", m) for name, m in model.p_x.named_children()]
    reshape = {"op": "reshape", "shape": list(model.output_shape)}
    return [*body, _op("p_z1.mu", model.p_z1.mu), *to_x, reshape]


# Model name -> its decoder as operations. A new architecture joins the explorer here.
DECODER_OPS: dict[str, Callable[[VAE], list[dict[str, Any]]]] = {
    "mlp": _mlp_ops,
    "conv": _conv_ops,
    "resconv": _conv_ops,
    "iwae-1l": _iwae_1l_ops,
    "iwae-2l": _iwae_2l_ops,
}


# Likelihoods whose mean is sigmoid(decoder output), which is what explorer.js applies.
SIGMOID_LIKELIHOODS = ("bernoulli", "gaussian")


def decoder_ops(model: VAE) -> tuple[list[dict[str, Any]], dict[str, torch.Tensor]]:
    """The decoder as (operations, float32 tensors by name): z (D,) -> logits (C, H, W)."""
    name = model.run_config.model.name if model.run_config is not None else None
    if name not in DECODER_OPS:
        known = ", ".join(sorted(DECODER_OPS))
        raise ConfigError(f"the explorer runs the decoders of {known}; this model is {name!r}")
    if model.likelihood.name not in SIGMOID_LIKELIHOODS:
        raise ConfigError(
            "the explorer shows decoders whose mean is the sigmoid of their output "
            f"({', '.join(SIGMOID_LIKELIHOODS)}); this model's likelihood is "
            f"{model.likelihood.name}"
        )
    ops = DECODER_OPS[name](model)
    state = model.state_dict()
    tensors = {
        key: state[key].detach().float().cpu()
        for op in ops
        for key in (op.get("weight"), op.get("bias"))
        if key
    }
    return ops, tensors


def _b64(array: np.ndarray, dtype: str) -> str:
    """Little-endian bytes of `array` as `dtype`, base64-encoded (JS reads them as typed arrays)."""
    return base64.b64encode(np.ascontiguousarray(array, dtype=dtype).tobytes()).decode("ascii")


def pack_decoder(model: VAE) -> dict[str, Any]:
    """Operations, a manifest {name: {offset, shape}} (offsets in floats) and one float32 buffer."""
    ops, tensors = decoder_ops(model)
    manifest, chunks, offset = {}, [], 0
    for key, tensor in tensors.items():
        manifest[key] = {"offset": offset, "shape": list(tensor.shape)}
        chunks.append(tensor.numpy().ravel())
        offset += tensor.numel()
    return {"ops": ops, "tensors": manifest, "weights": _b64(np.concatenate(chunks), "<f4")}


# ------------------------------------------------------------------ the backdrop


def scatter_data(
    model: VAE, images: torch.Tensor, labels: torch.Tensor, points: int, seed: int = 0
) -> dict[str, Any]:
    """Posterior means of `points` test images drawn at random, quantised to uint16.

    All D coordinates are kept, so the page can put any two latent dimensions on
    its axes and set the others with sliders. Each coordinate is stored as
    round((mu - lo) / (hi - lo) * 65535), an error below 1e-4 of the range.
    """
    generator = torch.Generator().manual_seed(seed)
    chosen = torch.randperm(images.shape[0], generator=generator)[:points]
    device = next(model.parameters()).device
    mu, _ = posterior_parameters(model, to_unit(images[chosen]).to(device))
    mu = mu.double().cpu().numpy()  # (N, D)
    lo, hi = mu.min(axis=0), mu.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    codes = np.round((mu - lo) / span * 65535)
    return {
        "n": int(mu.shape[0]),
        "lo": lo.tolist(),
        "hi": (lo + span).tolist(),
        "coords": _b64(codes, "<u2"),  # (N, D), row-major
        "labels": _b64(labels[chosen].cpu().numpy(), "u1"),
        "variance": mu.var(axis=0).tolist(),
    }


def view_ranges(scatter: dict[str, Any] | None, latent_dim: int) -> list[list[float]]:
    """Per dimension, the interval the map and sliders cover: the data and the prior's
    +-3 standard deviations, padded by 5 %."""
    ranges = []
    for d in range(latent_dim):
        lo, hi = -3.0, 3.0
        if scatter is not None:
            lo, hi = min(lo, scatter["lo"][d]), max(hi, scatter["hi"][d])
        pad = 0.05 * (hi - lo)
        ranges.append([lo - pad, hi + pad])
    return ranges


def default_axes(scatter: dict[str, Any] | None, latent_dim: int) -> list[int]:
    """z[0] and z[1] for a 2-D latent; above that, the two dimensions whose posterior
    means vary most (as plots.manifold_dims picks them)."""
    if latent_dim == 1:
        return [0, 0]
    if latent_dim == 2 or scatter is None:
        return [0, 1]
    order = np.argsort(-np.asarray(scatter["variance"]), kind="stable")
    return [int(order[0]), int(order[1])]


# ------------------------------------------------------------------ the page


def _run_summary(source: Path) -> dict[str, Any]:
    """The last epoch's record from metrics.jsonl beside the checkpoint, when there is one."""
    try:
        records = RunFolder(source.parent).read_metrics()
    except (OSError, VaekitError):
        return {}
    if not records:
        return {}
    last = records[-1]
    return {"epoch": last.get("epoch"), "testLoss": last.get("test_loss")}


def write_explorer(
    source: str | Path,
    out_dir: str | Path,
    data_dir: str | Path | None = None,
    points: int = DEFAULT_POINTS,
    device: str = "auto",
) -> Path:
    """Write the explorer page for a run folder or checkpoint into `out_dir`; returns
    the path of its index.html. `points` test images (0: none) form the backdrop."""
    if points < 0:
        raise ConfigError(f"points must be >= 0; got {points}")
    ckpt_path = checkpoint.resolve_path(source)
    model = api.load(ckpt_path, device)
    run = model.run_config
    scatter = None
    if points:  # the test images as `vaekit plot` draws them, binarised as in training
        test = api._test_split(model, data_dir, run.data.binarize)
        images = evaluation_images(test.images, run.data.binarize, run.train.seed)
        scatter = scatter_data(model, images, test.labels, points)
    named = (
        ckpt_path.parent if ckpt_path.name in (checkpoint.FILENAME, MODEL_WEIGHTS) else ckpt_path
    )
    data = {
        "meta": {
            "source": named.name,
            "model": run.model.name,
            "dataset": run.data.dataset,
            "latentDim": model.latent_dim,
            "imageShape": list(model.image_shape),
            "classNames": class_names(run.data.dataset),
            "range": view_ranges(scatter, model.latent_dim),
            "axes": default_axes(scatter, model.latent_dim),
            **_run_summary(ckpt_path),
        },
        "decoder": pack_decoder(model),
        "scatter": scatter,
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    assets = resources.files("vaekit") / "explorer"
    for name in ASSETS:
        with resources.as_file(assets / name) as asset:
            shutil.copyfile(asset, out / name)
    payload = json.dumps(data, separators=(",", ":"))
    (out / DATA_FILE).write_text(
        "// Written by `vaekit explore`: the decoder's weights, the test set's latent means.\n"
        f"window.VAEKIT_EXPLORER = {payload};\n"
    )
    return out / "index.html"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve(
    directory: str | Path,
    port: int = 8000,
    host: str = "127.0.0.1",
    announce: Callable[[str], None] = print,
) -> None:
    """Serve `directory` on host:port (0: any free port) until interrupted.

    Bound to the loopback address: the page is for the person at this machine.
    """
    handler = functools.partial(_QuietHandler, directory=str(directory))
    with http.server.ThreadingHTTPServer((host, port), handler) as server:
        announce(f"Serving http://{host}:{server.server_address[1]}/ (Ctrl-C to stop)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            announce("Stopped")
