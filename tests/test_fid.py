"""FID-MNIST: the Fréchet distance against closed forms, the classifier and its cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vaekit import fid
from vaekit.data import load_split, to_unit


def _spd(dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(dim, dim))
    return a @ a.T + 0.1 * np.eye(dim)


def test_diagonal_gaussians_match_the_closed_form():
    """Commuting covariances: |m1 - m2|^2 + sum (sqrt(a) - sqrt(b))^2."""
    m1, m2 = np.array([0.0, 1.0, -2.0]), np.array([0.5, 1.0, 0.0])
    a, b = np.array([1.0, 4.0, 0.25]), np.array([2.0, 1.0, 0.0])  # a zero variance too
    expected = ((m1 - m2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert fid.frechet_distance(m1, np.diag(a), m2, np.diag(b)) == pytest.approx(expected, 1e-10)


def test_non_commuting_covariances_match_the_two_by_two_closed_form():
    """In 2-D, tr sqrt(C1 C2) = sqrt(tr(C1 C2) + 2 sqrt(det C1 det C2)) (eigenvalue identity)."""
    c1, c2 = _spd(2, 0), _spd(2, 1)
    assert not np.allclose(c1 @ c2, c2 @ c1)
    m1, m2 = np.array([1.0, -1.0]), np.array([0.0, 2.0])
    trace_sqrt = np.sqrt(np.trace(c1 @ c2) + 2 * np.sqrt(np.linalg.det(c1) * np.linalg.det(c2)))
    expected = ((m1 - m2) ** 2).sum() + np.trace(c1) + np.trace(c2) - 2 * trace_sqrt
    assert fid.frechet_distance(m1, c1, m2, c2) == pytest.approx(expected, rel=1e-10)


def test_zero_for_identical_gaussians_and_symmetric():
    c1, c2 = _spd(12, 2), _spd(12, 3)
    m1, m2 = np.zeros(12), np.ones(12)
    assert fid.frechet_distance(m1, c1, m1, c1) == pytest.approx(0.0, abs=1e-8)
    assert fid.frechet_distance(m1, c1, m2, c2) == pytest.approx(
        fid.frechet_distance(m2, c2, m1, c1), rel=1e-9
    )


def test_sample_statistics_approach_the_closed_form():
    """Moments of 200k draws from two known 3-D Gaussians give nearly the exact distance."""
    c1, c2 = _spd(3, 4), _spd(3, 5)
    m1, m2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    rng = np.random.default_rng(6)
    x1 = rng.multivariate_normal(m1, c1, size=200_000)
    x2 = rng.multivariate_normal(m2, c2, size=200_000)
    estimated = fid.frechet_distance(*fid.feature_statistics(x1), *fid.feature_statistics(x2))
    assert estimated == pytest.approx(fid.frechet_distance(m1, c1, m2, c2), rel=0.02)


# --------------------------------------------------------------- the classifier

# About a second of training, ~89 % test accuracy: enough to test the machinery.
SMALL = fid.Recipe(width=8, features=32, epochs=3, batch_size=64, lr=3e-3, limit=3000)
# A few steps only: for tests of repeatability and the cache, not of accuracy.
TINY = fid.Recipe(width=4, features=16, epochs=1, batch_size=128, limit=512)


@pytest.fixture(scope="module")
def splits(mnist_dir):
    train = load_split("mnist", "train", mnist_dir, download=False).subset(3000)
    test = load_split("mnist", "test", mnist_dir, download=False).subset(1000)
    return train, test


@pytest.fixture(scope="module")
def small_classifier(splits):
    return fid.train_classifier(*splits, "mnist", SMALL, progress=False)


def test_classifier_learns_and_its_features_separate_real_from_noise(small_classifier, splits):
    train, test = splits
    assert small_classifier.test_accuracy > 0.8
    assert small_classifier.name == "FID-MNIST"
    net = small_classifier.net
    real = to_unit(test.images)
    assert fid.features(net, real[:10]).shape == (10, SMALL.features)
    assert fid.fid(net, real, real) == pytest.approx(0.0, abs=1e-6)
    noise = torch.rand(1000, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    other_real = to_unit(train.images[:1000])
    noise_fid = fid.fid(net, noise, real)
    assert noise_fid > 10 * fid.fid(net, other_real, real)
    assert 0 < small_classifier.fid_floor < noise_fid / 10


def test_training_repeats_bit_for_bit(splits):
    once = fid.train_classifier(*splits, "mnist", TINY, progress=False)
    again = fid.train_classifier(*splits, "mnist", TINY, progress=False)
    first, second = once.net.state_dict(), again.net.state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_cache_is_written_once_then_read(splits, tmp_path):
    """The conftest points the user cache at a temporary folder."""
    calls = []

    def load(split):
        calls.append(split)
        return dict(zip(("train", "test"), splits, strict=True))[split]

    device = torch.device("cpu")
    first = fid.load_or_train("mnist", load, device, TINY, progress=False, log=lambda _: None)
    assert calls == ["test", "train"]
    assert first.path == fid.cache_path("mnist", TINY) and first.path.is_file()
    second = fid.load_or_train("mnist", load, device, TINY, progress=False, log=lambda _: None)
    assert calls == ["test", "train", "test"]  # no retraining
    assert second.test_accuracy == first.test_accuracy and second.fid_floor == first.fid_floor
    x = to_unit(splits[1].images[:50])
    assert torch.equal(fid.features(first.net, x), fid.features(second.net, x))
    assert fid.cache_path("mnist", fid.Recipe()) != fid.cache_path("mnist", TINY)
    first.path.write_bytes(b"not a safetensors file")  # a damaged cache is retrained
    fid.load_or_train("mnist", load, device, TINY, progress=False, log=lambda _: None)
    assert calls[-1] == "train"
