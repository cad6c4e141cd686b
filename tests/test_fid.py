"""FID-MNIST: the Fréchet distance against closed forms, the classifier and its cache."""

from __future__ import annotations

import json

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
# 32 steps: a classifier that has learnt something (~35 % accuracy), for the evaluation path.
QUICK = fid.Recipe(width=4, features=16, epochs=1, batch_size=64, lr=3e-3, limit=2000)


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


# --------------------------------------------------------------- on the evaluation path


def _independent_fid(a: torch.Tensor, b: torch.Tensor) -> float:
    """|m1 - m2|^2 + tr C1 + tr C2 - 2 sum sqrt(eig(C1 C2)): the eigenvalues of a product of
    two PSD matrices are real and >= 0, so numpy's general `eigvals` gives tr (C1 C2)^(1/2)
    without any matrix square root (fid.py takes the symmetric (s C2 s)^(1/2) route)."""
    a, b = a.double(), b.double()
    c1, c2 = torch.cov(a.T).numpy(), torch.cov(b.T).numpy()
    eigenvalues = np.linalg.eigvals(c1 @ c2)
    assert np.abs(eigenvalues.imag).max() < 1e-6 * max(1.0, np.abs(eigenvalues.real).max())
    trace_sqrt = np.sqrt(eigenvalues.real.clip(min=0)).sum()
    mean = ((a.mean(0) - b.mean(0)) ** 2).sum().item()
    return mean + np.trace(c1) + np.trace(c2) - 2 * trace_sqrt


def test_evaluate_model_reports_fid_of_prior_samples_against_the_test_images(
    small_config, mnist_dir, tmp_path, monkeypatch
):
    """vaekit.evaluate_model with FID on: it trains (and caches) the dataset's classifier, and
    its FID is the Fréchet distance of that classifier's features of `limit` prior samples
    z ~ N(0, I), sigmoid(decode(z)), seeded by the evaluation's seed, and of the first `limit`
    grey-level test images; eval.json holds it."""
    import vaekit
    from vaekit.config import EvalConfig
    from vaekit.training.loop import fit

    small_config.train.epochs, small_config.data.limit = 1, 1000
    run = fit(small_config, tmp_path / "run", log=lambda _: None, progress=False)
    asked, loaded, real = [], [], fid.load_or_train

    def quick_classifier(dataset, load, device, recipe=None, **kwargs):
        """The real code path with the QUICK recipe, on 2,000 images of each split (the
        classifier's accuracy and FID floor are measured on the whole splits otherwise)."""
        asked.append((dataset, recipe))

        def first_images(split):
            whole = load(split)
            loaded.append((split, len(whole), whole.images.unique().numel() > 2))
            return whole.subset(2000)

        return real(dataset, first_images, device, QUICK, **kwargs)

    monkeypatch.setattr(fid, "load_or_train", quick_classifier)
    config = EvalConfig(k=4, limit=300, seed=5, device="cpu")
    result = vaekit.evaluate_model(run, config, progress=False, log=lambda _: None)
    assert asked == [("mnist", None)]  # the API asks for the standard recipe, the default
    assert loaded == [("test", 10_000, True), ("train", 60_000, True)]  # whole, grey levels
    assert result.fid is not None and result.fid.name == "FID-MNIST"
    assert result.fid.generated == result.fid.reference == result.images == 300

    cached = fid.load_classifier(fid.cache_path("mnist", QUICK), (1, 28, 28), QUICK, "cpu")
    assert cached is not None and result.fid.classifier == str(cached.path)
    assert result.fid.classifier_test_accuracy == cached.test_accuracy > 0.2  # chance: 0.1
    assert result.fid.floor_train_vs_test == cached.fid_floor
    model = vaekit.load(run, "cpu")
    test = load_split("mnist", "test", mnist_dir, download=False).subset(300)
    with torch.no_grad():
        z = torch.randn(300, model.latent_dim, generator=torch.Generator().manual_seed(5))
        generated = torch.sigmoid(model.decode(z))
        expected = _independent_fid(
            cached.net.features(generated), cached.net.features(to_unit(test.images))
        )
    assert result.fid.value == pytest.approx(expected, rel=1e-6)
    assert result.fid.value > cached.fid_floor  # one epoch on 1000 images: far from the data

    stored = json.loads((run / "eval.json").read_text())
    assert stored["fid"] == {
        "name": "FID-MNIST",
        "value": result.fid.value,
        "generated": 300,
        "reference": 300,
        "floor_train_vs_test": cached.fid_floor,
        "classifier_test_accuracy": cached.test_accuracy,
        "classifier": str(cached.path),
    }
