"""Splits in memory and their batches.

A split lives in memory as one uint8 tensor of shape (N, C, H, W) (or a memory-mapped
view of a user's array; tables and vectors are float32 (N, 1, 1, D), see
`vaekit.data.tables`); batches are cut from it by shuffled index, so no per-item
Python work happens in training.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vaekit.config import DataConfig, check_dataset_name
from vaekit.config.registry import BINARIZE as BINARIZE_PROTOCOLS
from vaekit.data import sprites
from vaekit.data.classes import class_indices, parse_classes
from vaekit.data.idx import read_idx
from vaekit.data.sources import (
    DATASETS,
    cache_dir,
    class_names,
    fetch,
    find_files,
    missing_message,
)
from vaekit.data.sprites import SPRITES
from vaekit.data.tables import is_table, load_table
from vaekit.data.userdata import load_user_data
from vaekit.errors import ConfigError, DataError


@dataclass
class Split:
    """A whole split in memory: uint8 images (N, C, H, W) and int64 labels (N,).

    A table's split also carries its `transform` (`data.tables.TableTransform`) and the
    file `rows` its examples came from; `names` are the labels' names where known;
    `factors` (N, F) the factor indices of a dataset that has them (sprites).
    """

    images: torch.Tensor
    labels: torch.Tensor
    transform: Any = None
    names: tuple[str, ...] | None = None
    rows: torch.Tensor | None = None
    factors: torch.Tensor | None = None
    factor_names: tuple[str, ...] | None = None

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    @property
    def is_vectors(self) -> bool:
        """Tables and vectors (shape (1, 1, D)) rather than images."""
        return self.transform is not None

    def to(self, device: torch.device) -> Split:
        factors = None if self.factors is None else self.factors.to(device)
        return replace(
            self, images=self.images.to(device), labels=self.labels.to(device), factors=factors
        )

    def take(self, index: torch.Tensor | slice) -> Split:
        """The examples at `index` (a slice, indices or a mask), with everything else kept."""
        rows = None if self.rows is None else self.rows[index]
        factors = None if self.factors is None else self.factors[index]
        return replace(
            self, images=self.images[index], labels=self.labels[index], rows=rows, factors=factors
        )

    def subset(self, n: int | None) -> Split:
        """The first n examples (all of them when n is None)."""
        return self if n is None else self.take(slice(0, n))


def load_data(
    config: DataConfig,
    split: str,
    data_dir: str | Path | None = None,
    transform: Any = None,
) -> Split:
    """One split ("train", "test", "validation", or "all": train and test) as a run's data
    config describes it (source, protocol, classes, limit). A table is read with
    `transform` (its run's, from the checkpoint) or, when None, one fitted on its training
    split. With `config.validation` = N, "validation" is the last N examples of the
    training split and "train" the rest, so choices made on it never see the test set."""
    source = "train" if split == VALIDATION else split
    if is_table(config.dataset):
        part = load_table(config.dataset, source, config, transform)
        vectors = torch.from_numpy(part.vectors).reshape(len(part.rows), 1, 1, -1)
        labels, rows = torch.from_numpy(part.labels), torch.from_numpy(part.rows)
        loaded = Split(vectors, labels, part.transform, part.label_names, rows)
    else:
        parts = [_load_images(config, name, data_dir) for name in _splits(source)]
        loaded = parts[0] if len(parts) == 1 else _concatenate(parts)
        loaded.names = tuple(class_names(config.dataset)) or None
    if source == "train" and (config.validation or split == VALIDATION):
        loaded = hold_out(loaded, config.validation, keep=split)
    return only_classes(loaded, config.classes, config.dataset).subset(config.limit)


def _splits(split: str) -> tuple[str, ...]:
    return ("train", "test") if split == "all" else (split,)


def _load_images(config: DataConfig, split: str, data_dir: str | Path | None) -> Split:
    if config.dataset == SPRITES.name:  # drawn, not read: unpack only the first `limit`
        return sprites_split(split, data_dir or config.data_dir, config.limit)
    return load_split(
        config.dataset,
        split,
        data_dir or config.data_dir,
        config.download,
        config.binarize,
        image_size=config.image_size,
        image_mode=config.image_mode,
        resize=config.resize,
        test_fraction=config.test_fraction,
    )


VALIDATION = "validation"


def hold_out(train: Split, n: int, keep: str) -> Split:
    """The training split without its last `n` examples ("train"), or those alone."""
    if keep == VALIDATION and not n:
        raise ConfigError(
            "the validation split: there is none (--validation N holds out the last N "
            "training examples; a run's is the one it was trained with)"
        )
    if not 0 < n < len(train):
        raise ConfigError(
            f"--validation {n} must lie between 1 and {len(train) - 1}, the training "
            f"examples less one"
        )
    cut = len(train) - n
    return train.take(slice(cut, None) if keep == VALIDATION else slice(0, cut))


def _concatenate(parts: list[Split]) -> Split:
    factors = None
    if all(p.factors is not None for p in parts):
        factors = torch.cat([p.factors for p in parts])
    images, labels = torch.cat([p.images for p in parts]), torch.cat([p.labels for p in parts])
    return Split(images, labels, factors=factors, factor_names=parts[0].factor_names)


def only_classes(split: Split, classes: str | None, source: str) -> Split:
    """The examples whose label `classes` names (all when None): see `data.classes`."""
    tokens = parse_classes(classes)
    if not tokens:
        return split
    wanted = torch.tensor(class_indices(tokens, split.names or (), source))
    keep = torch.isin(split.labels, wanted.to(split.labels.device))
    if not bool(keep.any()):
        raise DataError(f"--classes {classes}: no example of {source} has these labels")
    return split.take(keep)


def load_split(
    name: str,
    split: str,
    data_dir: str | Path | None = None,
    download: bool = True,
    binarize: str = "none",
    *,
    image_size: int | None = None,
    image_mode: str = "auto",
    resize: str = "squash",
    test_fraction: float = 0.1,
) -> Split:
    """Load one split of a dataset, fetching a named one into the cache when allowed.

    `folder:PATH` and `npy:PATH` read the user's own images (see vaekit.data.userdata);
    `resize` says how `image_size` fits them (squash or crop).
    With `binarize="static"` the images come back as one fixed Bernoulli draw
    (pixels 0 or 255, see `static_binarize`); other protocols act per batch.
    """
    if binarize not in BINARIZE:
        raise DataError(f"binarize must be one of {', '.join(BINARIZE)}; got {binarize!r}")
    check_dataset_name(name)
    if name == SPRITES.name:
        return sprites_split(split, data_dir, None)
    if name in DATASETS:
        loaded = _load_idx_split(name, split, data_dir, download)
    else:
        images, labels = load_user_data(name, split, image_size, image_mode, test_fraction, resize)
        # A view, not a copy: a memory-mapped array stays on disk until batches touch it.
        loaded = Split(torch.from_numpy(images).permute(0, 3, 1, 2), torch.from_numpy(labels))
    if binarize == "static":
        loaded = Split(static_binarize(loaded.images, name, split), loaded.labels)
    return loaded


def sprites_split(split: str, data_dir: str | Path | None, limit: int | None) -> Split:
    """The sprites' split (drawn into the cache on first use): labels are the shape,
    `factors` all five factor indices. Its pixels are already 0/255, so every
    binarisation protocol (a Bernoulli draw of 0 or 1) leaves them as they are."""
    images, factors = sprites.load(split, data_dir, limit)
    loaded = make_split(images, factors[:, 0])
    loaded.factors, loaded.factor_names = torch.from_numpy(factors), SPRITES.factor_names
    return loaded


def _load_idx_split(name: str, split: str, data_dir: str | Path | None, download: bool) -> Split:
    dataset = DATASETS[name]
    if split not in dataset.splits:
        raise DataError(f"{name} has no split {split!r}; it has {', '.join(dataset.splits)}")
    files = find_files(dataset, data_dir)
    if files is None:  # downloads, like every fallback, are for when no folder is named
        failures = fetch(dataset, cache_dir() / name) if download and not data_dir else []
        files = find_files(dataset, data_dir)
        if files is None:
            raise DataError(missing_message(dataset, data_dir, failures))
    image_spec, label_spec = dataset.splits[split]
    images = read_idx(files[image_spec.name], image_spec)
    labels = read_idx(files[label_spec.name], label_spec)
    return make_split(images, labels, str(files[label_spec.name]))


def make_split(images: np.ndarray, labels: np.ndarray, source: str = "labels") -> Split:
    """Wrap uint8 images (N, H, W) or (N, H, W, C) and labels (N,) as a Split."""
    if images.ndim == 3:
        images = images[:, None]
    elif images.ndim == 4:
        images = images.transpose(0, 3, 1, 2)
    else:
        raise DataError(f"images must have 3 or 4 dimensions, got shape {images.shape}")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise DataError(
            f"{source}: {labels.shape[0] if labels.ndim else 0} labels for "
            f"{images.shape[0]} images (expected one label per image)"
        )
    return Split(
        torch.from_numpy(np.ascontiguousarray(images, dtype=np.uint8)),
        torch.from_numpy(labels.astype(np.int64)),
    )


# ------------------------------------------------------------------ batching


def to_unit(images: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 [0, 255] -> float in [0, 1], exactly as torchvision's ToTensor scales.

    Float images (from a user's .npy array) are already in [0, 1] and only cast.
    """
    if images.dtype == torch.uint8:
        return images.to(dtype) / 255
    return images.to(dtype)


# ------------------------------------------------------------------ binarisation

# none: grey levels in [0, 1] scored by Bernoulli cross-entropy (the seed notebook).
# dynamic: x ~ Bernoulli(pixel / 255) afresh each time a batch is drawn, the protocol
#   of the MNIST likelihood papers (e.g. Burda et al. 2015); evaluation draws once
#   with a fixed seed so that its numbers repeat.
# static: one fixed draw per split, made at load time, then reused for every epoch.
BINARIZE = BINARIZE_PROTOCOLS.names()  # declared in vaekit.config.registry


def binarize_images(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One Bernoulli draw per pixel with p = pixel / 255, returned as uint8 0 or 255.

    Keeping uint8 lets a binarised split sit in memory and batch like any other.
    """
    draw = torch.bernoulli(to_unit(images), generator=generator)
    return draw.to(torch.uint8) * 255


def static_binarize(images: torch.Tensor, dataset: str, split: str) -> torch.Tensor:
    """The split's fixed draw: its seed depends only on (dataset, split), so every
    run, limit and machine sees the same binary images."""
    seed = zlib.crc32(f"vaekit-static-binarize/{dataset}/{split}".encode())
    return binarize_images(images, torch.Generator(device=images.device).manual_seed(seed))


def model_input(
    images: torch.Tensor, binarize: str = "none", generator: torch.Generator | None = None
) -> torch.Tensor:
    """The float batch a model is trained on, from a uint8 batch.

    `dynamic` draws x ~ Bernoulli(pixel) here, from `generator` (the global RNG when
    None, which checkpoints save, so a resumed run redraws the same pixels);
    `none` and `static` only rescale, as statically binarised images are already 0/255.
    """
    if binarize == "dynamic":
        return torch.bernoulli(to_unit(images), generator=generator)
    if binarize in BINARIZE:
        return to_unit(images)
    raise DataError(f"binarize must be one of {', '.join(BINARIZE)}; got {binarize!r}")


def evaluation_images(images: torch.Tensor, binarize: str, seed: int = 0) -> torch.Tensor:
    """The uint8 images a model is scored on under a protocol; fixed for a given seed.

    Dynamic binarisation draws the whole set once from a generator seeded with
    `seed`, so that repeated evaluations see the same pixels; the other protocols
    return the images as loaded.
    """
    if binarize != "dynamic":
        return images
    mixed = int(np.random.SeedSequence([seed % 2**64, 1]).generate_state(1, np.uint64)[0])
    return binarize_images(images, torch.Generator(device=images.device).manual_seed(mixed))


def epoch_order(n: int, seed: int, epoch: int, device: torch.device | None = None) -> torch.Tensor:
    """The shuffled example order of one epoch, a pure function of (seed, epoch).

    Deriving it afresh per epoch (rather than from a running generator) makes a
    resumed run draw exactly the batches an uninterrupted one would.
    """
    # SeedSequence mixes (seed, epoch) so that no two pairs share an order.
    mixed = int(np.random.SeedSequence([seed % 2**64, epoch]).generate_state(1, np.uint64)[0])
    generator = torch.Generator().manual_seed(mixed)
    return torch.randperm(n, generator=generator).to(device or "cpu")


def iterate_batches(
    images: torch.Tensor, batch_size: int, order: torch.Tensor
) -> Iterator[torch.Tensor]:
    """Batches of uint8 images cut from a resident tensor in the given order."""
    for start in range(0, order.numel(), batch_size):
        yield images[order[start : start + batch_size]]
