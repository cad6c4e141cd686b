"""Plots and report.html: written by `vaekit train` and `vaekit plot`, the right size,
not blank, and a report that opens offline."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

import vaekit
from vaekit import plots
from vaekit.cli import main

PNGS = ("latent_manifold.png", "latent_scatter.png", "interpolations.png", "loss_curves.png")


def _expected_size(name: str) -> tuple[int, int]:
    width, height = plots.SIZES[name.removesuffix(".png")]
    return round(height * plots.DPI), round(width * plots.DPI)


def _check_picture(path) -> None:
    """Right size, and drawn on. Image grids: the figure's centre lies on the canvas of
    decoded images and varies there (a constant decoder would give one flat grey).
    Charts: coloured points or lines exist (axes, ticks and text are black on white)."""
    rgb = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)
    assert rgb.shape[:2] == _expected_size(path.name), path.name
    if path.name in ("latent_manifold.png", "interpolations.png"):
        height, width = rgb.shape[:2]
        centre = rgb.mean(axis=2)[
            int(0.35 * height) : int(0.65 * height), int(0.3 * width) : int(0.6 * width)
        ]
        assert (centre > 250).mean() < 0.01, f"{path.name}: no image canvas in the middle"
        assert centre.std() > 8, f"{path.name}: the decoded images are flat"
    else:
        coloured = (rgb.max(axis=2) - rgb.min(axis=2)) > 60
        assert coloured.mean() > 0.005, f"{path.name}: no data drawn"


def _run(tmp_path_factory, mnist_dir, name, latent_dim, plots_on):
    from vaekit.config import RunConfig

    config = RunConfig()
    config.data.data_dir, config.data.download, config.data.limit = str(mnist_dir), False, 1500
    config.model.latent_dim, config.model.hidden_dim = latent_dim, 128
    config.train.epochs, config.train.device = 2, "cpu"
    config.train.pictures, config.train.plots = True, plots_on
    return vaekit.train(
        config, tmp_path_factory.mktemp(name) / "run", log=lambda _: None, progress=False
    )


@pytest.fixture(scope="module")
def run2(tmp_path_factory, mnist_dir):
    """`fit` with the default end-of-run step: pictures, plots and report.html."""
    return _run(tmp_path_factory, mnist_dir, "plots2", latent_dim=2, plots_on=True)


def test_training_draws_every_plot_at_its_size(run2):
    for name in PNGS:
        _check_picture(run2 / name)


def test_report_is_self_contained_and_shows_every_picture(run2):
    page = (run2 / "report.html").read_text()
    embedded = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    pictures = sorted(p.name for p in run2.glob("*.png"))
    assert len(pictures) == 6 and len(embedded) == 6
    assert {base64.b64decode(e) for e in embedded} == {(run2 / p).read_bytes() for p in pictures}
    assert not re.search(r"(src|href)=\"(https?:)?//", page), "no external resources"
    assert "<script" not in page
    epochs = len((run2 / "metrics.jsonl").read_text().splitlines())
    assert page.count("<tr>") >= epochs + 1
    assert "vaekit evaluate" in page  # says how to add the likelihood table


def test_wider_latent_via_the_plot_command_and_evaluate_updates_the_report(
    tmp_path_factory, mnist_dir, capsys
):
    """--no-plots skips them; `vaekit plot` draws them (PCA, two chosen dimensions)."""
    run = _run(tmp_path_factory, mnist_dir, "plots5", latent_dim=5, plots_on=False)
    assert not any((run / name).exists() for name in (*PNGS, "report.html"))
    assert main(["plot", str(run)]) == 0
    assert "report.html" in capsys.readouterr().out
    for name in PNGS:
        _check_picture(run / name)
    argv = ["evaluate", str(run), "-k", "5", "--limit", "100", "--no-fid", "--no-progress"]
    assert main(argv) == 0
    page = (run / "report.html").read_text()
    assert "importance-weighted, k = 5" in page
    assert json.loads((run / "eval.json").read_text())["latent"]["dim"] == 5


def test_plot_command_refuses_a_folder_without_a_run(tmp_path, capsys):
    assert main(["plot", str(tmp_path)]) == 2
    assert "not a vaekit run folder" in capsys.readouterr().err


# --------------------------------------------------------------- the pieces


def test_prior_quantile_grid_is_the_inverse_normal_cdf():
    values = plots.prior_quantile_grid(3)
    torch.testing.assert_close(values, torch.tensor([-1.6449, 0.0, 1.6449]), atol=1e-4, rtol=0)


def test_pca_keeps_the_geometry_of_points_in_a_plane():
    g = torch.Generator().manual_seed(0)
    flat = torch.randn(200, 2, generator=g, dtype=torch.float64) * torch.tensor([3.0, 1.0])
    basis, _ = torch.linalg.qr(torch.randn(5, 2, generator=g, dtype=torch.float64))
    points, labels = plots.project_2d(flat @ basis.T + 7.0)
    shares = [int(label.split("(")[1].split(" %")[0]) for label in labels]
    assert 85 <= shares[0] <= 95 and sum(shares) == 100  # the plane holds all the variance
    # Direct differences: the matrix-product shortcut leaves ~1e-7 on the diagonal (sqrt of
    # a rounding error), which depends on the thread count.
    exact = "donot_use_mm_for_euclid_dist"
    torch.testing.assert_close(
        torch.cdist(points, points, compute_mode=exact), torch.cdist(flat, flat, compute_mode=exact)
    )
    same, names = plots.project_2d(flat)
    assert torch.equal(same, flat) and names == ["z[0]", "z[1]"]


def test_interpolation_pairs_and_manifold_dims():
    labels = torch.tensor([3, 1, 0, 1, 2, 3, 0])
    assert plots.interpolation_pairs(labels, 3) == [(2, 1), (1, 4), (4, 0)]
    mu = torch.randn(100, 4) * torch.tensor([0.1, 2.0, 0.01, 1.0])
    assert plots.manifold_dims(mu) == (1, 3)


def _blue_pixels(path, half: str) -> int:
    """Pixels of the recon curves' colour (matplotlib's tab:blue) in one half of the figure."""
    rgb = np.asarray(Image.open(path).convert("RGB")).astype(int)
    width = rgb.shape[1]
    part = rgb[:, width // 2 :] if half == "right" else rgb[:, : width // 2]
    return int((np.abs(part - (31, 119, 180)).sum(-1) < 30).sum())


def test_loss_curves_show_negative_reconstruction_terms(tmp_path):
    """A Gaussian likelihood's -log p(x|z) is negative: the terms' axis must still draw it
    (a log axis drops it and leaves only its legend entry)."""
    records = [
        {
            "epoch": e,
            "train_loss": -900.0 + e,
            "test_loss": -890.0 + e,
            "train_recon": -950.0 + e,
            "test_recon": -940.0 + e,
            "train_kl": 50.0,
            "test_kl": 50.0,
        }
        for e in range(1, 6)
    ]
    negative = plots.loss_curves(records, tmp_path / "negative.png")
    positive = [dict(r, train_recon=100.0 + r["epoch"], test_recon=110.0) for r in records]
    reference = plots.loss_curves(positive, tmp_path / "positive.png")
    # the negative curves draw about as many recon-coloured pixels as positive ones do
    assert _blue_pixels(negative, "right") > 0.5 * _blue_pixels(reference, "right") > 100
