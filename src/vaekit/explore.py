"""The latent explorer: a static web page that decodes latent points in the browser.

`write_explorer` writes, into one folder,
    index.html, ops.js, explorer.js,      the page (package data, copied as they are):
    style.css                             ops.js runs the decoder, explorer.js draws
    data.js                               the decoder's weights and the test set's latent
                                          means, assigned to `window.VAEKIT_EXPLORER`
and `serve` serves those files (and nothing else) on localhost. The page needs no
server and no network: opened from disk (file://), Chromium refuses fetch() of local
files but runs a local <script src>, so the data travel as a script rather than as
.bin/.json files.

Each model describes its own decoder as a short list of operations over float32
tensors, the likelihood's mean included (`VAE.explorer_decoder`, the format in
`vaekit.models.export`); this module only names the tensors and serialises the list,
and explorer/ops.js interprets it, so no model needs code here or in the page.
"""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vaekit import api, checkpoint, explorer_server
from vaekit.data import class_names, evaluation_images, to_unit
from vaekit.errors import ConfigError, VaekitError
from vaekit.evaluation.estimate import posterior_points
from vaekit.models import VAE
from vaekit.runfolder import MODEL_WEIGHTS, RunFolder

ASSETS = ("index.html", "ops.js", "explorer.js", "style.css")
DATA_FILE = "data.js"
DEFAULT_POINTS = 5000


# ------------------------------------------------------------ the decoder as data


def decoder_ops(model: VAE) -> tuple[list[dict[str, Any]], dict[str, torch.Tensor]]:
    """The model's own description of z (D,) -> image (C, H, W) (`explorer_decoder`) as
    JSON-ready operations and the float32 tensors they name.

    A tensor that is one of the model's parameters or buffers keeps its state-dict
    name; one derived from them (a slice) is named after its operation.
    """
    names = {id(t): key for key, t in model.state_dict(keep_vars=True).items()}
    ops, tensors = [], {}
    for index, op in enumerate(model.explorer_decoder()):
        plain = {}
        for field, value in op.items():
            if isinstance(value, torch.Tensor):
                key = names.get(id(value), f"op{index}.{field}")
                tensors[key] = value.detach().float().cpu().contiguous()
                value = key
            plain[field] = value
        ops.append(plain)
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
    x, y = to_unit(images[chosen]).to(device), labels[chosen]  # a conditional model: q(z|x, y)
    mu = posterior_points(model, x, labels=y if model.classes else None)  # a flow's z_T
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
    """The last epoch's record from the run's metrics beside the checkpoint, if any."""
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
    if model.data_transform is not None:
        raise ConfigError("explore decodes images; a table's rows: use vaekit encode or sample")
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
            "latentNote": model.explorer_note,
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


def serve(
    directory: str | Path,
    port: int = 8000,
    host: str = "127.0.0.1",
    announce: Callable[[str], None] = print,
) -> None:
    """Serve the page in `directory` (its own files only) on host:port until Ctrl-C;
    see `vaekit.explorer_server`."""
    explorer_server.serve(directory, (*ASSETS, DATA_FILE), port, host, announce)
