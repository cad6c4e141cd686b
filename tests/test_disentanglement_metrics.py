"""MIG, DCI and the FactorVAE score on synthetic codes whose answer is known."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

from vaekit import api
from vaekit.config import EvalConfig, MLPConfig, RunConfig
from vaekit.data import sprites
from vaekit.evaluation.disentanglement import (
    dci,
    dci_from_importance,
    entropy,
    factorvae_score,
    mig,
    mutual_information,
)
from vaekit.evaluation.result import EvalResult
from vaekit.training.loop import fit


def _factors(n: int = 4000, sizes=(3, 6, 10, 8), seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(s, size=n) for s in sizes], axis=1)


def _codes(factors: np.ndarray, kind: str, seed: int = 1) -> np.ndarray:
    """One code per factor (its value plus a little noise), pure noise, or the first two
    factors rotated by 45 degrees into each other."""
    rng = np.random.default_rng(seed)
    f = (factors - factors.mean(0)) / factors.std(0)
    if kind == "aligned":
        return f + 0.05 * rng.standard_normal(f.shape)
    if kind == "noise":
        return rng.standard_normal(f.shape)
    mixed = f.copy()
    mixed[:, 0], mixed[:, 1] = (
        (f[:, 0] + f[:, 1]) / math.sqrt(2),
        (f[:, 0] - f[:, 1]) / math.sqrt(2),
    )
    return mixed + 0.05 * rng.standard_normal(f.shape)


def test_mutual_information_and_entropy_of_known_distributions():
    a = np.repeat(np.arange(4), 100)
    assert entropy(a) == pytest.approx(math.log(4))
    assert mutual_information(a, a) == pytest.approx(math.log(4))
    assert mutual_information(a, a % 2) == pytest.approx(math.log(2))
    assert mutual_information(a, np.tile(np.arange(4), 100)) == pytest.approx(0.0, abs=1e-12)


def test_mig_is_one_for_aligned_codes_and_near_zero_for_noise():
    factors = _factors()
    aligned = mig(_codes(factors, "aligned"), factors)
    assert aligned["mig"] > 0.9
    assert min(aligned["per_factor"]) > 0.85
    assert mig(_codes(factors, "noise"), factors)["mig"] < 0.05
    rotated = mig(_codes(factors, "rotated"), factors)
    assert rotated["per_factor"][0] < 0.5 * aligned["per_factor"][0]
    assert rotated["per_factor"][2] > 0.85  # the factors left alone stay captured


def test_mig_sees_a_duplicated_code_as_no_gap():
    factors = _factors()
    codes = _codes(factors, "aligned")
    codes[:, 1] = codes[:, 0]  # factor 0 in two dimensions, factor 1 in none
    per = mig(codes, factors)["per_factor"]
    assert per[0] < 0.05 and per[1] < 0.05 and per[2] > 0.85


def test_dci_scores_of_importance_matrices_by_hand():
    assert dci_from_importance(np.eye(4)) == pytest.approx(
        {"disentanglement": 1.0, "completeness": 1.0}
    )
    uniform = dci_from_importance(np.ones((4, 4)))
    assert uniform == pytest.approx({"disentanglement": 0.0, "completeness": 0.0}, abs=1e-12)
    # one code explains two factors equally: its disentanglement is 1 - log 2 / log K
    r = np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    got = dci_from_importance(r)
    d0 = 1 - math.log(2) / math.log(3)
    assert got["disentanglement"] == pytest.approx((2 / 3) * d0 + (1 / 3) * 1.0)
    assert got["completeness"] == pytest.approx(1.0)  # each factor lives in one code


def test_dci_with_forests_on_synthetic_codes():
    pytest.importorskip("sklearn")
    factors = _factors(1200)
    aligned = dci(_codes(factors, "aligned"), factors)
    assert aligned["disentanglement"] > 0.95 and aligned["completeness"] > 0.95
    assert aligned["informativeness"] > 0.95
    noise = dci(_codes(factors, "noise"), factors)
    assert noise["disentanglement"] < 0.2 and noise["informativeness"] < 0.4
    rotated = dci(_codes(factors, "rotated"), factors)
    assert rotated["disentanglement"] < aligned["disentanglement"] - 0.2


def test_factorvae_score_of_aligned_noise_and_rotated_codes():
    factors = _factors()
    assert factorvae_score(_codes(factors, "aligned"), factors)["eval_accuracy"] == 1.0
    # noise: the argmin dimension says nothing, so about one vote in K is right
    assert factorvae_score(_codes(factors, "noise"), factors)["eval_accuracy"] < 0.4
    # rotated: fixing factor 0 or 1 leaves both mixed codes varying; about 3/4 right
    rotated = factorvae_score(_codes(factors, "rotated"), factors)["eval_accuracy"]
    assert 0.5 < rotated < 0.9


def test_factorvae_score_leaves_collapsed_dimensions_out():
    factors = _factors()
    codes = np.concatenate([_codes(factors, "aligned"), np.zeros((len(factors), 2))], axis=1)
    got = factorvae_score(codes, factors)
    assert got["active_dims"] == 4 and got["eval_accuracy"] == 1.0


def test_evaluate_reports_the_metrics_of_a_sprites_run(tmp_path, monkeypatch):
    """A run on a small sprites grid (every factor kept, fewer values): `vaekit evaluate`'s
    API writes the metrics into eval.json, reads them back, and draws the traversal."""
    pytest.importorskip("sklearn")
    small = sprites.Grid(shapes=3, scales=2, orientations=4, positions=8)
    images, factors = sprites.build(small)
    monkeypatch.setattr(sprites, "FULL", small)
    monkeypatch.setattr(sprites, "TEST_SIZE", 400)
    monkeypatch.setattr(
        sprites, "CHECKSUMS", {"images": sprites.sha256(images), "factors": sprites.sha256(factors)}
    )
    config = RunConfig()
    config.data.dataset, config.data.data_dir = "sprites", str(tmp_path / "data")
    config.model = MLPConfig(latent_dim=3, hidden_dim=32)
    config.objective.objective, config.objective.beta = "beta-tcvae", 4.0
    config.train.epochs, config.train.pictures, config.train.plots = 1, False, False
    run = fit(config, tmp_path / "run", log=lambda _: None, progress=False)
    result = api.evaluate_model(run, EvalConfig(k=1, fid=False), progress=False, log=print)
    scores = result.disentanglement
    assert scores.factors == list(sprites.FACTOR_NAMES) and scores.examples == 400
    assert 0 <= scores.mig <= 1 and 0 <= scores.dci_disentanglement <= 1
    assert scores.factorvae_active_dims <= 3 and len(scores.mig_per_factor) == 5
    saved = EvalResult.from_dict(json.loads((run / "eval.json").read_text()))
    assert saved.disentanglement == scores
    traversal = Image.open(run / "traversal.png")
    assert traversal.size == (2 * (10 * 66 + 2), 2 * (3 * 66 + 2))  # 10 steps x 3 dimensions
