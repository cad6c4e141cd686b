"""Pictures of what a model learned, drawn with matplotlib (headless, Agg).

The only module that imports matplotlib, and it does so without pyplot: every
figure is a `matplotlib.figure.Figure` of its own, so no global state and no
display are involved. `plot_run` writes, into a run folder,
    latent_manifold.png   decoded images over a grid of latent values
    latent_scatter.png    the test set's posterior means, coloured by label
    interpolations.png    decoded paths between pairs of test images
    loss_curves.png       train and test loss per epoch, from metrics.jsonl
and then report.html (see `vaekit.report`).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from vaekit import report
from vaekit.data import Split, class_names, evaluation_images, to_unit
from vaekit.evaluation.estimate import posterior_points
from vaekit.models import VAE
from vaekit.runfolder import (
    INTERPOLATIONS,
    LATENT_MANIFOLD,
    LATENT_SCATTER,
    LOSS_CURVES,
    RunFolder,
)
from vaekit.runtime import inference

# Figures are drawn without pyplot, so no GUI backend is ever touched; Agg is named
# anyway so that nothing else in the process can pick an interactive one.
matplotlib.use("Agg")

DPI = 100
# Figure sizes in inches; at DPI these give each PNG's size in pixels.
SIZES = {
    "latent_manifold": (8.0, 8.0),
    "latent_scatter": (8.0, 7.0),
    "interpolations": (11.0, 7.0),
    "loss_curves": (11.0, 4.5),
}


def _figure(name: str) -> Figure:
    return Figure(figsize=SIZES[name], dpi=DPI, layout="constrained")


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)  # no bbox_inches="tight": the size stays SIZES x DPI
    return path


def _decode(model: VAE, z: torch.Tensor) -> torch.Tensor:
    """The likelihood's means in [0, 1] for codes z (N, D), on the CPU."""
    device = next(model.parameters()).device
    with inference(model):
        return model.likelihood.mean(model.decode(z.to(device)).float()).cpu()


def _tile(images: torch.Tensor, rows: int, cols: int) -> np.ndarray:
    """(rows * cols, C, H, W) -> one (rows * H, cols * W[, C]) array, no padding."""
    _, c, h, w = images.shape
    canvas = images.reshape(rows, cols, c, h, w).permute(0, 3, 1, 4, 2)
    canvas = canvas.reshape(rows * h, cols * w, c).numpy()
    return canvas[..., 0] if c == 1 else canvas


def _show(ax, canvas: np.ndarray, fig: Figure, legend: str) -> None:
    """Grey images get a grey colour map with a colour bar saying what grey means."""
    if canvas.ndim == 2:
        shown = ax.imshow(canvas, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        fig.colorbar(shown, ax=ax, shrink=0.8, label=legend)
    else:
        ax.imshow(canvas.clip(0, 1), interpolation="nearest")


def prior_quantile_grid(n: int, low: float = 0.05, high: float = 0.95) -> torch.Tensor:
    """n latent values at evenly spaced quantiles of N(0, 1), as in Kingma & Welling's
    figure 4: linearly spaced coordinates of the unit square through the inverse CDF."""
    return torch.special.ndtri(torch.linspace(low, high, n, dtype=torch.float64)).float()


def latent_manifold(
    model: VAE, path: str | Path, n: int = 20, dims: tuple[int, int] = (0, 1)
) -> Path:
    """An n x n grid of decoded images over two latent dimensions, the others held at 0.

    Columns walk `dims[0]`, rows `dims[1]` (largest at the top, like a y axis).
    A one-dimensional latent gets a single row.
    """
    latent = model.latent_dim
    values = prior_quantile_grid(n)
    rows = n if latent > 1 else 1
    z = torch.zeros(rows, n, latent)
    z[:, :, dims[0]] = values[None, :]
    if latent > 1:
        z[:, :, dims[1]] = values.flip(0)[:, None]
    images = _decode(model, z.reshape(rows * n, latent))
    _, _, h, w = images.shape
    fig = _figure("latent_manifold")
    ax = fig.add_subplot()
    _show(ax, _tile(images, rows, n), fig, "p(pixel on) = decoder mean")
    step = max(1, n // 5)
    ticks = list(range(0, n, step))
    ax.set_xticks([(i + 0.5) * w for i in ticks], [f"{values[i]:.2f}" for i in ticks])
    ax.set_xlabel(f"z[{dims[0]}] (prior quantiles 5 % to 95 %)")
    if latent > 1:
        flipped = values.flip(0)
        ax.set_yticks([(i + 0.5) * h for i in ticks], [f"{flipped[i]:.2f}" for i in ticks])
        ax.set_ylabel(f"z[{dims[1]}]" + ("" if latent == 2 else " (other dimensions at 0)"))
    else:
        ax.set_yticks([])
    which = "" if latent == 2 else f" (dimensions {dims[0]} and {dims[1]} of {latent})"
    ax.set_title(f"Latent manifold: decoded images over z{which}")
    return _save(fig, Path(path))


def project_2d(mu: torch.Tensor) -> tuple[torch.Tensor, list[str]]:
    """Points (N, 2) to draw and their axis labels: the means themselves for a 2-D
    latent, else their first two principal components (labelled with the variance
    they explain)."""
    mu = mu.double()
    if mu.shape[1] == 2:
        return mu, ["z[0]", "z[1]"]
    if mu.shape[1] == 1:
        return torch.cat([mu, torch.zeros_like(mu)], dim=1), ["z[0]", ""]
    centred = mu - mu.mean(dim=0)
    _, singular, vh = torch.linalg.svd(centred, full_matrices=False)
    share = singular.pow(2) / singular.pow(2).sum()
    labels = [f"PC {i + 1} ({100 * share[i]:.0f} % of variance)" for i in range(2)]
    return centred @ vh[:2].T, labels


def latent_scatter(
    mu: torch.Tensor, labels: torch.Tensor, path: str | Path, class_names: list[str]
) -> Path:
    """Posterior means (N, D) as points coloured by class (PCA to 2-D when D > 2)."""
    points, axis_labels = project_2d(mu.cpu())
    points, labels = points.numpy(), labels.cpu().numpy()
    fig = _figure("latent_scatter")
    ax = fig.add_subplot()
    colours = matplotlib.colormaps["tab10"]
    for c in np.unique(labels):
        chosen = labels == c
        name = class_names[c] if c < len(class_names) else str(c)
        ax.scatter(*points[chosen].T, s=3, alpha=0.6, color=colours(int(c) % 10), label=name)
    ax.legend(title="label", markerscale=4, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.set_xlabel(axis_labels[0])
    ax.set_ylabel(axis_labels[1])
    projected = " (PCA)" if mu.shape[1] > 2 else ""
    ax.set_title(f"Test set: posterior means E[z|x]{projected}, {len(labels)} images")
    ax.grid(alpha=0.3)
    return _save(fig, Path(path))


def interpolation_pairs(labels: torch.Tensor, n_pairs: int = 8) -> list[tuple[int, int]]:
    """Indices (a, b): the first image of class i and the first of class i + 1, so each
    row crosses from one class to the next; deterministic."""
    labels = labels.cpu()
    classes = sorted(set(labels.tolist()))
    first = {c: int((labels == c).nonzero()[0]) for c in classes}
    pairs = []
    for i in range(min(n_pairs, len(classes))):
        a, b = classes[i], classes[(i + 1) % len(classes)]
        pairs.append((first[a], first[b]))
    return pairs


def interpolations(
    model: VAE,
    x: torch.Tensor,
    pairs: list[tuple[int, int]],
    path: str | Path,
    names: list[str],
    steps: int = 10,
) -> Path:
    """Per pair: image a, decodes of (1 - t) mu_a + t mu_b for t in [0, 1], image b."""
    device = next(model.parameters()).device
    a = x[[i for i, _ in pairs]].to(device)
    b = x[[j for _, j in pairs]].to(device)
    with inference(model):
        mu_a, mu_b = model.posterior_point(a), model.posterior_point(b)  # a flow's z_T
    t = torch.linspace(0, 1, steps, device=device)[None, :, None]
    z = (1 - t) * mu_a.float()[:, None] + t * mu_b.float()[:, None]  # (pairs, steps, D)
    path_images = _decode(model, z.flatten(0, 1)).unflatten(0, (len(pairs), steps))
    rows = torch.cat([a.float().cpu()[:, None], path_images, b.float().cpu()[:, None]], dim=1)
    cols = steps + 2
    _, _, _, h, w = rows.shape
    fig = _figure("interpolations")
    ax = fig.add_subplot()
    _show(ax, _tile(rows.flatten(0, 1), len(pairs), cols), fig, "pixel value / decoder mean")
    ts = torch.linspace(0, 1, steps).tolist()
    ax.set_xticks(
        [(i + 0.5) * w for i in range(cols)],
        ["x_a"] + [f"{v:.2f}" for v in ts] + ["x_b"],
        fontsize=8,
    )
    ax.set_xlabel("t: decoded (1 - t) E[z|x_a] + t E[z|x_b]; x_a, x_b are the test images")
    ax.set_yticks([(r + 0.5) * h for r in range(len(pairs))], names)
    ax.set_ylabel("pair (label of x_a to label of x_b)")
    ax.set_title("Interpolations between test images in latent space")
    return _save(fig, Path(path))


def read_metrics(run_dir: str | Path) -> list[dict]:
    """metrics.jsonl as a list of per-epoch records ([] when the file is absent)."""
    return RunFolder(run_dir).read_metrics()


def loss_curves(records: list[dict], path: str | Path) -> Path:
    """Negative ELBO per epoch (left) and its two terms (right), train and test."""
    epochs = [r["epoch"] for r in records]
    fig = _figure("loss_curves")
    left, right = fig.subplots(1, 2)
    terms = []
    for split, style in (("train", "-"), ("test", "--")):
        left.plot(epochs, [r[f"{split}_loss"] for r in records], style, marker="o", label=split)
        for term, colour in (("recon", "tab:blue"), ("kl", "tab:orange")):
            values = [r[f"{split}_{term}"] for r in records]
            terms += values
            right.plot(epochs, values, style, marker="o", color=colour, label=f"{split} {term}")
    left.set_title("Loss: negative ELBO per example")
    left.set_ylabel("nats")
    right.set_title("Its terms: reconstruction -log p(x|z) and KL(q(z|x) || p(z))")
    right.set_ylabel("nats")
    # Densities on [0, 1] (Gaussian, continuous Bernoulli) make -log p(x|z) negative, which
    # a log axis cannot show: symlog keeps both signs (linear within 1 nat of zero).
    if min(terms, default=1.0) > 0:
        right.set_yscale("log")
    else:
        right.set_yscale("symlog", linthresh=1.0)
    for ax in (left, right):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, Path(path))


def manifold_dims(mu: torch.Tensor) -> tuple[int, int]:
    """The two latent dimensions whose posterior means vary most over the data."""
    if mu.shape[1] <= 2:
        return (0, 1)
    top = torch.argsort(mu.double().var(dim=0), descending=True)[:2]
    return int(top[0]), int(top[1])


def plot_run(
    model: VAE,
    test: Split,
    run_dir: str | Path,
    seed: int = 0,
    binarize: str = "none",
    dataset: str = "mnist",
) -> list[Path]:
    """Every picture of a run into `run_dir`, then report.html; returns the PNG paths.
    For tables and vectors, the latent scatter and loss curves only (no decoded pictures)."""
    run_dir = Path(run_dir)
    device = next(model.parameters()).device
    x = to_unit(evaluation_images(test.images, binarize, seed)).to(device)
    mu = posterior_points(model, x, labels=test.labels)  # with a flow: z_T, as decoded
    names = list(test.names or class_names(dataset))
    scatter = latent_scatter(mu, test.labels, run_dir / LATENT_SCATTER, names)
    if test.is_vectors:  # decodes drawn as pictures need images: a table gets the scatter
        written = [scatter]
    else:
        pairs = interpolation_pairs(test.labels)
        pair_names = [
            f"{_name(names, int(test.labels[a]))} to {_name(names, int(test.labels[b]))}"
            for a, b in pairs
        ]
        written = [
            latent_manifold(model, run_dir / LATENT_MANIFOLD, dims=manifold_dims(mu)),
            scatter,
            interpolations(model, x, pairs, run_dir / INTERPOLATIONS, pair_names),
        ]
    records = read_metrics(run_dir)
    if records:
        written.append(loss_curves(records, run_dir / LOSS_CURVES))
    report.write_report(run_dir)
    return written


def _name(names: list[str], label: int) -> str:
    return names[label] if label < len(names) else str(label)
