"""Where samples come from and where they go, for the API's sampling functions: the
prior (one row per class for a conditional model), the GMM sampler (`vaekit.gmm`) and
its FID, a table model's rows; and the label keyword a conditional model needs.

Each takes a loaded model; `vaekit.api` wraps them for run paths."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from vaekit import fid, gmm, inputs, pictures
from vaekit.data import load_data, to_unit
from vaekit.errors import ConfigError
from vaekit.evaluation.estimate import posterior_points
from vaekit.files import write_csv
from vaekit.models import VAE
from vaekit.runfolder import RECONSTRUCTIONS, SAMPLES, RunFolder
from vaekit.runtime import inference


def label_keyword(model: VAE, labels: inputs.ArrayLike | None, n: int) -> dict[str, torch.Tensor]:
    """A conditional model's keyword for n labels (required); others take none."""
    if not model.classes:
        if labels is not None:
            raise ConfigError("labels are for a conditional model (--condition label)")
        return {}
    if labels is None:
        raise ConfigError("a conditional model needs the labels of what it encodes or decodes")
    y = torch.as_tensor(labels, device=next(model.parameters()).device).long().reshape(-1)
    if y.shape[0] != n or not ((y >= 0) & (y < model.classes)).all():
        raise ConfigError(f"labels must be {n} integers in 0 .. {model.classes - 1}")
    return {"y": y}


def class_samples(model: VAE, per_class: int = 8, seed: int = 0) -> torch.Tensor:
    """A conditional model's prior samples, `per_class` of each class in label order (one
    row per class when tiled `per_class` wide): (classes * per_class, C, H, W) in [0, 1]."""
    return pictures.class_rows(model, per_class, seed)


def sample_gmm(
    model: VAE,
    n: int,
    seed: int = 0,
    components: int = 10,
    data_dir: str | Path | None = None,
    label: int | None = None,
) -> torch.Tensor:
    """n images generated from a Gaussian mixture fitted to the posterior means of the
    run's training images (`vaekit.gmm`; with a flow, pushed through it: the codes the
    decoder reads) instead of the prior: (n, C, H, W) in [0, 1]. For
    a hierarchical model the mixture is of the top group's means; the groups below are
    drawn from their priors given it (`generate_from`), as the prior's samples are.
    A conditional model needs `label`: the mixture is fitted to that class's posterior
    means (given the label) and decoded with it."""
    if bool(model.classes) != (label is not None):
        need = "needs --label" if model.classes else "takes no --label (not conditional)"
        raise ConfigError(f"the gmm sampler for this model {need}")
    device = next(model.parameters()).device
    train = load_data(model.run_config.data, "train", data_dir).to(device)
    images, labels = to_unit(train.images), train.labels
    if label is not None:
        images, labels = images[labels == label], labels[labels == label]
    mu = posterior_points(model, images, labels=labels)  # with a flow: z_T, as decoded
    mixture = gmm.fit_gmm(mu, components, seed=seed)
    generator = torch.Generator(device=device).manual_seed(seed)
    z = mixture.sample(n, generator).to(mu.dtype)
    y = None if label is None else torch.full((n,), label, device=device)
    with inference(model):
        params = model.generate_from(z, generator, **model.condition(y))
        return model.likelihood.mean(params.float())


def gmm_fid(
    model: VAE,
    classifier: fid.Classifier,
    grey: torch.Tensor,
    components: int,
    seed: int = 0,
    data_dir: str | Path | None = None,
) -> dict[str, Any]:
    """FID of as many GMM-sampler images as test images (the prior's FID has the same
    count and reference), so the two sit side by side in eval.json."""
    if model.classes:
        return {"skipped": "a conditional model's gmm sampler is per label (sample --label)"}
    mark = time.perf_counter()
    n = grey.shape[0]
    images = sample_gmm(model, n, seed, components, data_dir)
    value = fid.fid(classifier.net, images, to_unit(grey).to(images.device))
    seconds = time.perf_counter() - mark
    return {"value": value, "components": components, "generated": n, "seconds": seconds}


def sample_rows(model: VAE, n: int = 64, seed: int = 0) -> dict[str, list]:
    """n rows drawn from a table model, x ~ p(x|z) with z ~ p(z), in the table's original
    units and categories: {column: values}, in the file's column order."""
    if model.data_transform is None:
        raise ConfigError("sample_rows is for models of tables; use vaekit.sample for images")
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    with inference(model):
        x = model.likelihood.sample(model.generate(n, generator).float(), generator)
    return model.data_transform.decode(x.reshape(n, -1).cpu().numpy())


def write_samples(model: VAE, n: int = 64, seed: int = 0, output: str | Path | None = None) -> Path:
    """n prior samples into a file: a PNG grid for images (default samples.png), CSV rows
    in the original units for a table model (default samples.csv)."""
    table = model.data_transform is not None
    suffix = ".csv" if table else ".png"
    output = Path(output or f"samples{suffix}")
    if output.suffix.lower() != suffix:
        kind = "table model's samples are rows" if table else "image model's samples are a picture"
        raise ConfigError(f"-o {output}: a {kind}; write them to a {suffix} file")
    if table:
        return write_csv(output, sample_rows(model, n, seed))
    return pictures.save_png(pictures.grid(pictures.sample(model, n, seed)), output, scale=2)


def write_run_pictures(
    model: VAE,
    test_images: torch.Tensor,
    run_dir: Path,
    seed: int,
    test_labels: torch.Tensor | None = None,
) -> None:
    """samples.png: 64 prior draws, 8x8 as in the seed (a conditional model: one row of 8
    per class); reconstructions.png: 32 test images (given their labels)."""
    folder = RunFolder(run_dir)
    samples = class_samples(model, 8, seed) if model.classes else pictures.sample(model, 64, seed)
    pictures.save_png(pictures.grid(samples), folder.file(SAMPLES), scale=2)
    originals = to_unit(test_images[:32])
    labels = None if test_labels is None else test_labels[:32]
    recon = pictures.reconstruction_grid(model, originals, labels=labels)
    pictures.save_png(recon, folder.file(RECONSTRUCTIONS), scale=2)
