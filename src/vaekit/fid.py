"""FID-MNIST / FID-FMNIST: a Fréchet distance that needs no download.

Inception-based FID (Heusel et al. 2017) needs ImageNet weights from the internet
and judges 28x28 digits with features learnt on photographs. Here a small
convolutional classifier is trained once on the dataset's own training split
(seeded, a couple of minutes on a CPU), cached under the user cache, and its
penultimate-layer features stand in for Inception's pool features. The numbers
are therefore on their own scale: call them FID-MNIST / FID-FMNIST and compare
them only with each other, never with Inception FID.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save
from torch import nn
from tqdm import tqdm

from vaekit import pictures
from vaekit.data import DATASETS, Split, cache_dir, epoch_order, to_unit
from vaekit.errors import DataError
from vaekit.files import write_atomic
from vaekit.models import VAE
from vaekit.runtime import inference

# Bump when the architecture or training changes: old cache files are then ignored.
CLASSIFIER_VERSION = 1
FID_NAMES = {"mnist": "FID-MNIST", "fashion-mnist": "FID-FMNIST"}
# Training images compared with the test set to give FID's floor: what two real
# samples of the same distribution score.
FLOOR_IMAGES = 10_000


@dataclass(frozen=True)
class Recipe:
    """Everything that determines the classifier's weights; hashed into the cache name."""

    width: int = 32
    features: int = 128
    epochs: int = 2
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0
    limit: int | None = None  # training images used (None: the whole split)


class FeatureNet(nn.Module):
    """Two conv + max-pool blocks -> `features` units (the FID features) -> class logits."""

    def __init__(self, image_shape: tuple[int, int, int], num_classes: int, recipe: Recipe) -> None:
        super().__init__()
        channels, height, width = image_shape
        w = recipe.width
        self.body = nn.Sequential(
            nn.Conv2d(channels, w, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(2 * w * (height // 4) * (width // 4), recipe.features),
            nn.ReLU(),
        )
        self.head = nn.Linear(recipe.features, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


@dataclass
class Classifier:
    """A trained feature network and what is known about it."""

    net: FeatureNet
    dataset: str
    test_accuracy: float
    fid_floor: float  # FID between FLOOR_IMAGES training images and the test set
    path: Path | None = None

    @property
    def name(self) -> str:
        return FID_NAMES.get(self.dataset, f"FID-{self.dataset}")


# ------------------------------------------------------------------ Fréchet distance


def feature_statistics(features: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (F,) and unbiased covariance (F, F) of features (N, F), in float64."""
    array = np.asarray(features, dtype=np.float64)
    return array.mean(axis=0), np.cov(array, rowvar=False)


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix by eigendecomposition."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(values.clip(min=0))) @ vectors.T


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """Squared 2-Wasserstein distance between N(mu1, cov1) and N(mu2, cov2).

    |mu1 - mu2|^2 + tr(cov1) + tr(cov2) - 2 tr((cov1 cov2)^(1/2)), with the last
    trace taken as tr((s cov2 s)^(1/2)), s = cov1^(1/2): the same eigenvalues, but a
    symmetric PSD matrix, so `eigh` suffices where FID code usually needs scipy's
    general `sqrtm` and its complex round-off.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    cov1, cov2 = np.atleast_2d(cov1).astype(np.float64), np.atleast_2d(cov2).astype(np.float64)
    root = _sqrt_psd(cov1)
    middle = root @ cov2 @ root
    eigenvalues = np.linalg.eigvalsh((middle + middle.T) / 2).clip(min=0)
    trace_sqrt = np.sqrt(eigenvalues).sum()
    distance = np.sum((mu1 - mu2) ** 2) + np.trace(cov1) + np.trace(cov2) - 2 * trace_sqrt
    return float(max(distance, 0.0))


def features(
    net: FeatureNet,
    images: torch.Tensor,
    batch_size: int = 1000,
    progress: bool = False,
    desc: str = "FID features",
) -> torch.Tensor:
    """Penultimate-layer features (N, F) of float images in [0, 1], (N, C, H, W); a bar
    when `progress` (on a slow CPU 10,000 images take tens of seconds)."""
    device = next(net.parameters()).device
    out = []
    starts = range(0, images.shape[0], batch_size)
    with inference(net):
        for start in tqdm(starts, desc=desc, leave=False, disable=None if progress else True):
            out.append(net.features(images[start : start + batch_size].float().to(device)).cpu())
    return torch.cat(out)


def fid(
    net: FeatureNet, generated: torch.Tensor, reference: torch.Tensor, progress: bool = False
) -> float:
    """Fréchet distance between the classifier's features of two sets of float images."""
    mu1, cov1 = feature_statistics(features(net, generated, progress=progress, desc="FID: samples"))
    mu2, cov2 = feature_statistics(features(net, reference, progress=progress, desc="FID: test"))
    return frechet_distance(mu1, cov1, mu2, cov2)


def fid_report(
    classifier: Classifier,
    model: VAE,
    reference: torch.Tensor,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """FID of as many prior samples (Bernoulli means) as `reference` images, with context."""
    generated = pictures.sample(model, reference.shape[0], seed)
    return {
        "name": classifier.name,
        "value": fid(classifier.net, generated, reference, progress),
        "generated": int(reference.shape[0]),
        "reference": int(reference.shape[0]),
        "floor_train_vs_test": classifier.fid_floor,
        "classifier_test_accuracy": classifier.test_accuracy,
        "classifier": str(classifier.path) if classifier.path else None,
    }


def label_accuracy(
    classifier: Classifier, model: VAE, per_class: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """How often the classifier reads a conditional model's samples as the label asked
    for: `per_class` prior samples of each label (chance: 1 / classes)."""
    images = pictures.class_rows(model, per_class, seed)
    asked = torch.arange(model.classes).repeat_interleave(per_class)
    with torch.no_grad():
        read = torch.cat([classifier.net(chunk).argmax(1).cpu() for chunk in images.split(1000)])
    hits = (read == asked).float()
    per_label = hits.view(model.classes, per_class).mean(1)
    return {
        "accuracy": hits.mean().item(),
        "per_label": [round(v, 4) for v in per_label.tolist()],
        "samples_per_label": per_class,
        "classifier": classifier.name,
    }


# ------------------------------------------------------------------ the classifier


def accuracy(net: FeatureNet, split: Split, batch_size: int = 1000) -> float:
    device = next(net.parameters()).device
    correct = 0
    with inference(net):
        for start in range(0, len(split), batch_size):
            x = to_unit(split.images[start : start + batch_size].to(device))
            labels = split.labels[start : start + batch_size].to(device)
            correct += int((net(x).argmax(dim=1) == labels).sum())
    return correct / len(split)


def train_classifier(
    train: Split,
    test: Split,
    dataset: str,
    recipe: Recipe = Recipe(),
    progress: bool = True,
) -> Classifier:
    """Train the feature network on `train` (grey levels), seeded; measure it on `test`."""
    device = train.images.device
    train = train.subset(recipe.limit)
    num_classes = DATASETS[dataset].num_classes if dataset in DATASETS else 10
    torch.manual_seed(recipe.seed)
    net = FeatureNet(train.image_shape, num_classes, recipe).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=recipe.lr)
    net.train()
    steps = recipe.epochs * -(-len(train) // recipe.batch_size)
    with tqdm(
        total=steps,
        desc=f"FID classifier ({dataset})",
        leave=False,
        disable=None if progress else True,
    ) as bar:
        for epoch in range(1, recipe.epochs + 1):
            order = epoch_order(len(train), recipe.seed, epoch, device)
            for start in range(0, len(order), recipe.batch_size):
                index = order[start : start + recipe.batch_size]
                x, labels = to_unit(train.images[index]), train.labels[index]
                loss = F.cross_entropy(net(x), labels)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                bar.update()
    net.eval()
    floor = fid(net, to_unit(train.images[:FLOOR_IMAGES]), to_unit(test.images))
    return Classifier(net, dataset, accuracy(net, test), floor)


def cache_path(dataset: str, recipe: Recipe) -> Path:
    """<cache>/classifiers/<dataset>-<hash>.safetensors, keyed by the data and the recipe."""
    key = {
        "version": CLASSIFIER_VERSION,
        "dataset": dataset,
        "train_sha256": [f.sha256 for f in DATASETS[dataset].splits["train"]],
        "recipe": asdict(recipe),
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir() / "classifiers" / f"{dataset}-{digest}.safetensors"


def save_classifier(classifier: Classifier, path: Path, recipe: Recipe) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {
        "dataset": classifier.dataset,
        "version": str(CLASSIFIER_VERSION),
        "recipe": json.dumps(asdict(recipe)),
        "test_accuracy": repr(classifier.test_accuracy),
        "fid_floor": repr(classifier.fid_floor),
    }
    state = {k: v.detach().cpu().contiguous() for k, v in classifier.net.state_dict().items()}
    write_atomic(path, save(state, metadata=metadata))  # a crash leaves no half file
    classifier.path = path
    return path


def load_classifier(
    path: Path, image_shape: tuple[int, int, int], recipe: Recipe, device: torch.device
) -> Classifier | None:
    """The cached classifier, or None when the file is missing or unreadable (then retrain)."""
    try:
        state = load_file(str(path))
        with safe_open(str(path), "pt") as handle:
            metadata = handle.metadata()
        dataset = metadata["dataset"]
        num_classes = DATASETS[dataset].num_classes
        net = FeatureNet(image_shape, num_classes, recipe)
        net.load_state_dict(state)
    except (OSError, SafetensorError, KeyError, ValueError, RuntimeError):
        return None
    return Classifier(
        net.to(device).eval(),
        dataset,
        float(metadata["test_accuracy"]),
        float(metadata["fid_floor"]),
        path,
    )


def load_or_train(
    dataset: str,
    load: Callable[[str], Split],
    device: torch.device,
    recipe: Recipe = Recipe(),
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> Classifier:
    """The dataset's classifier from the cache, trained and cached on first use.

    `load(split)` returns a split (uint8, grey levels); only called when training.
    """
    if dataset not in DATASETS:
        raise DataError(f"no FID classifier for unknown dataset {dataset!r}")
    path = cache_path(dataset, recipe)
    test = load("test")
    cached = load_classifier(path, test.image_shape, recipe, device)
    if cached is not None:
        return cached
    log(f"Training the {FID_NAMES.get(dataset, dataset)} classifier once (cached at {path})")
    classifier = train_classifier(
        load("train").to(device), test.to(device), dataset, recipe, progress
    )
    save_classifier(classifier, path, recipe)
    return classifier
