"""MIG, DCI and the FactorVAE score on synthetic codes whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vaekit.evaluation.disentanglement import (
    dci,
    dci_from_importance,
    entropy,
    factorvae_score,
    mig,
    mutual_information,
)


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
    assert aligned["disentanglement"] > 0.8 and aligned["completeness"] > 0.8
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
