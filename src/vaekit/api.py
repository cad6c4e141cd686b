"""The Python API: the same functions the CLI calls."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from vaekit import checkpoint, fid, inputs, pictures, pretrained, runfolder, sampling, tracking
from vaekit.config import EvalConfig, RunConfig
from vaekit.data import Split, TableTransform, evaluation_images, load_data
from vaekit.distributed import world_from_env
from vaekit.errors import ConfigError, DataError
from vaekit.evaluation import estimate as evaluation
from vaekit.evaluation.encoded import Encoding, encode_split
from vaekit.evaluation.result import EvalResult
from vaekit.evaluation.scores import Scores, anomaly_picture, score_split
from vaekit.models import VAE, build_model
from vaekit.runfolder import RunFolder
from vaekit.runlock import RunLock
from vaekit.runtime import inference, resolve_device
from vaekit.training.loop import fit
from vaekit.training.observers import EpochObserver
from vaekit.training.resume import resume_config


def load(path: str | Path, device: str = "auto") -> VAE:
    """A trained model from a run folder, checkpoint file or model folder (`vaekit export
    --format folder`), in eval mode.

    The run's configuration is attached as `model.run_config`, a table's transform
    (`vaekit.data.TableTransform`) as `model.data_transform`.
    """
    ckpt = checkpoint.load(path)
    transform = TableTransform.from_dict(ckpt.data_transform) if ckpt.data_transform else None
    layout = None if transform is None else transform.layout
    model = build_model(ckpt.config.model, ckpt.image_shape, layout)
    try:
        model.load_state_dict(ckpt.model_state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise checkpoint.CheckpointError(
            f"{path}: weights do not fit the model ({first})"
        ) from None
    model.run_config, model.data_transform = ckpt.config, transform
    return model.to(resolve_device(device)).eval()


def load_pretrained(name: str, device: str = "auto") -> VAE:
    """A model shipped with vaekit (see `vaekit.pretrained.names()`), offline, in eval mode."""
    return load(pretrained.path(name), device)


def default_run_dir(config: RunConfig) -> Path:
    """runs/<dataset>-<model>-<time>: where a run goes when no folder is named."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = config.data.dataset.replace(":", "-").replace("/", "_")
    return Path("runs") / f"{name}-{config.model.name}-{stamp}"


def train(
    config: RunConfig | None = None,
    run_dir: str | Path | None = None,
    log: Callable[[str], None] = print,
    progress: bool = True,
    observers: Sequence[EpochObserver] = (),
) -> Path:
    """Train a model (the seed's defaults when `config` is None) into `run_dir`
    (default: `default_run_dir`), then draw its pictures; returns the run folder.
    `observers` hear of each epoch (see `training.observers`); the trackers that
    `config.train.tracking` names (`vaekit.tracking`) are added to them."""
    config = config or RunConfig()
    run_dir = run_dir or default_run_dir(config)
    lock = RunLock(run_dir, holds=world_from_env().is_main)  # over the pictures too
    with lock, _trackers(config, run_dir) as trackers:
        watching = [*observers, *trackers]
        run = fit(config, run_dir, log=log, progress=progress, observers=watching, lock=lock)
        finish_run(run, progress)
    return run


def resume(
    run_dir: str | Path,
    log: Callable[[str], None] = print,
    progress: bool = True,
    observers: Sequence[EpochObserver] = (),
    **overrides: Any,
) -> Path:
    """Continue a stopped run; `overrides` may extend `epochs` or move `device`. The run's
    trackers (`config.train.tracking`) keep logging to the same TensorBoard folder and
    MLflow run."""
    lock = RunLock(run_dir, holds=world_from_env().is_main)  # over the pictures too
    with lock:
        config, _ = resume_config(RunFolder(run_dir), overrides)  # the trackers' config
        with _trackers(config, run_dir) as trackers:
            watching = [*observers, *trackers]
            run = fit(RunConfig(), run_dir, True, overrides, log, progress, watching, lock)
        finish_run(run, progress)
    return run


def _trackers(
    config: RunConfig, run_dir: str | Path
) -> contextlib.AbstractContextManager[list[EpochObserver]]:
    """The experiment trackers `config.train.tracking` names (rank 0 alone logs); they
    close after `finish_run`, so the run's pictures reach them."""
    if not config.train.tracking or not world_from_env().is_main:
        return contextlib.nullcontext([])
    return tracking.session(config, run_dir)


def finish_run(run_dir: Path, progress: bool = True) -> None:
    """The end of a run: samples, reconstructions, plots and report.html, as its
    config asks (rank 0 alone under torchrun), under a bar naming each phase (on a
    busy CPU, matplotlib's import and the plots take tens of seconds)."""
    if not world_from_env().is_main:
        return
    run = checkpoint.load(run_dir).config
    if not (run.train.pictures or run.train.plots):
        return
    with tqdm(total=3, desc="End of run", leave=False, disable=None if progress else True) as bar:
        bar.set_postfix_str("loading the model and test split")
        model = load(run_dir, run.train.device)
        test = load_data(run.data, "test", transform=model.data_transform)  # as trained on
        test = test.to(next(model.parameters()).device)
        bar.update()
        bar.set_postfix_str("samples and reconstructions")
        folder = RunFolder(run_dir)
        if run.train.pictures and test.is_vectors:  # a table's samples are rows, not pictures
            write_samples(model, 64, run.train.seed, folder.file(runfolder.SAMPLES_CSV))
        elif run.train.pictures:
            sampling.write_run_pictures(model, test.images, run_dir, run.train.seed, test.labels)
        bar.update()
        bar.set_postfix_str("latent plots and report.html")
        if run.train.plots and model.gaussian_latents:  # the latent plots need posterior means
            from vaekit import plots  # matplotlib is slow to import: only runs that draw pay

            seed, data = run.train.seed, run.data
            plots.plot_run(model, test, run_dir, seed, data.binarize, data.dataset)
        bar.update()


def encode(
    model: VAE | str | Path, x: inputs.ArrayLike, labels: inputs.ArrayLike | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior mean and log-variance, each (B, D), for images x: (B, C, H, W) or one
    (C, H, W), float in [0, 1] or uint8, as a tensor or array (for a table model: its
    encoded vectors, (B, width)). `model` may be a run path; a conditional model's
    `labels` (B,) are required."""
    model = _model(model)
    device = next(model.parameters()).device
    if model.data_transform is not None:
        x = inputs.vectors(x, model.image_shape, device)
    else:
        x = inputs.images(x, model.image_shape, device)
    with inference(model):
        return model.encode(x, **sampling.label_keyword(model, labels, x.shape[0]))


def decode(
    model: VAE | str | Path, z: inputs.ArrayLike, labels: inputs.ArrayLike | None = None
) -> torch.Tensor:
    """Images in [0, 1] (the likelihood's means) for latent codes z, (B, D) or one (D,).
    For hierarchical models z is the top group; the lower ones sit at their prior means.
    A conditional model's `labels` (B,) are required."""
    model = _model(model)
    z = inputs.codes(z, model.latent_dim, next(model.parameters()).device)
    keyword = sampling.label_keyword(model, labels, z.shape[0])
    with inference(model):
        return model.likelihood.mean(model.decode(z, **keyword).float())


def class_samples(model: VAE | str | Path, per_class: int = 8, seed: int = 0) -> torch.Tensor:
    """A conditional model's prior samples, `per_class` of each class in label order (one
    row per class when tiled `per_class` wide): (classes * per_class, C, H, W) in [0, 1]."""
    return sampling.class_samples(_model(model), per_class, seed)


def sample_gmm(
    model: VAE | str | Path,
    n: int,
    seed: int = 0,
    components: int = 10,
    data_dir: str | Path | None = None,
    label: int | None = None,
) -> torch.Tensor:
    """n images from the GMM sampler: a Gaussian mixture fitted to the training images'
    posterior means (a conditional model: that `label`'s), see `sampling.sample_gmm`."""
    return sampling.sample_gmm(_model(model), n, seed, components, data_dir, label)


def sample_rows(model: VAE | str | Path, n: int = 64, seed: int = 0) -> dict[str, list]:
    """n rows drawn from a table model, x ~ p(x|z) with z ~ p(z), in the table's original
    units and categories: {column: values}, in the file's column order."""
    return sampling.sample_rows(_model(model), n, seed)


def write_samples(
    model: VAE | str | Path, n: int = 64, seed: int = 0, output: str | Path | None = None
) -> Path:
    """n prior samples into a file: a PNG grid for images (default samples.png), CSV rows
    in the original units for a table model (default samples.csv)."""
    return sampling.write_samples(_model(model), n, seed, output)


def _model(model: VAE | str | Path) -> VAE:
    return model if isinstance(model, VAE) else load(model)


def _split(model: VAE, split: str, data_dir: str | Path | None, binarize: str) -> Split:
    """A whole split of the model's data under a protocol (the run's training limit is
    not applied: evaluation has its own), on the model's device."""
    data = dataclasses.replace(model.run_config.data, binarize=binarize, limit=None)
    loaded = load_data(data, split, data_dir, transform=model.data_transform)
    return loaded.to(next(model.parameters()).device)


def _test_split(model: VAE, data_dir: str | Path | None, binarize: str) -> Split:
    return _split(model, "test", data_dir, binarize)


def _loaded(model: VAE | str | Path, device: str) -> tuple[VAE, str | None]:
    if isinstance(model, VAE):
        if model.run_config is None:
            raise ConfigError("the model has no run configuration; load it with vaekit.load")
        return model, None
    return load(model, device), str(checkpoint.resolve_path(model))


def evaluate_model(
    model: VAE | str | Path,
    config: EvalConfig | None = None,
    data_dir: str | Path | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
    output: str | Path | None = None,
) -> EvalResult:
    """Score a trained model (or run folder / checkpoint) on its dataset's test split.

    Negative ELBO, importance-weighted log-likelihood with `config.k` samples,
    KL per dimension, active units and FID-MNIST (the classifier is trained and
    cached on first use). For a run folder or checkpoint, the result goes to
    `output` (default: eval.json beside the checkpoint) and a report.html there
    is refreshed; an in-memory model's result is written only to `output`.
    """
    config = config or EvalConfig()
    config.validate()
    model, source = _loaded(model, config.device)
    run = model.run_config
    binarize = run.data.binarize if config.binarize == "run" else config.binarize
    test = _test_split(model, data_dir, binarize).subset(config.limit)
    classifier = None
    if config.fid and run.data.dataset not in fid.FID_NAMES:
        log(f"No FID for {run.data.dataset}: its classifier exists for {', '.join(fid.FID_NAMES)}")
    elif config.fid:
        classifier = fid.load_or_train(
            run.data.dataset,
            lambda split: _split(model, split, data_dir, "none"),
            next(model.parameters()).device,
            progress=progress,
            log=log,
        )
    grey = test if binarize != "static" else _test_split(model, data_dir, "none")
    result = evaluation.evaluate(
        model, test, config, binarize, classifier, progress, grey.subset(config.limit).images
    )
    result.checkpoint, result.dataset, result.torch = source, run.data.dataset, torch.__version__
    if classifier is not None and config.gmm_components:
        result.extra["fid_gmm"] = sampling.gmm_fid(
            model, classifier, grey.images, config.gmm_components, config.seed, data_dir
        )
    if classifier is not None and model.classes:  # does it draw the digit asked for?
        result.extra["label_accuracy"] = fid.label_accuracy(classifier, model, 1000, config.seed)
    if model.classes:  # a conditional VAE scores each image given its label
        result.extra["conditional"] = "-ELBO and -log p(x) are of x given its label: p(x | y)"
    _store(result, source, output)
    if result.disentanglement is not None and "written" in result.extra:  # factor labels
        beside = RunFolder(Path(result.extra["written"]).parent).file(runfolder.TRAVERSAL)
        result.extra["traversal"] = str(pictures.write_traversal(model, test.images[:1], beside))
    return result


def _store(result: EvalResult, source: str | None, output: str | Path | None) -> None:
    """Write eval.json (or `output`) and refresh the run's report.html when there is one."""
    if output is None and source is None:
        return
    folder = RunFolder(Path(source).parent if source else Path(output).parent)
    written = folder.write_eval(result, output)
    result.extra["written"] = str(written)
    if written == folder.eval_path and folder.report_path.is_file():
        from vaekit import report

        report.write_report(folder.path)
        result.extra["report"] = str(folder.report_path)


def plot(
    run_dir: str | Path, data_dir: str | Path | None = None, device: str = "auto"
) -> list[Path]:
    """Draw a run's (or model folder's) pictures and report.html into its folder; returns
    the PNG paths."""
    from vaekit import plots  # matplotlib is slow to import: only callers that draw pay

    run_dir = Path(run_dir)
    if not checkpoint.resolve_path(run_dir).is_file():  # a run, or a model folder
        RunFolder(run_dir).require_run()
    model = load(run_dir, device)
    run = model.run_config
    test = _test_split(model, data_dir, run.data.binarize)
    return plots.plot_run(model, test, run_dir, run.train.seed, run.data.binarize, run.data.dataset)


def _examples(
    model: VAE,
    data: str | None,
    split: str | None,
    classes: str | None,
    data_dir: str | Path | None,
    binarize: str,
) -> Split:
    """What `encode_data` and `score_data` read: the run's own data (`split`, default
    test; "validation": what its `--validation N` held out, every class) or `data`, a
    named dataset (its test split by default) or `KIND:PATH` (every row by default);
    every class unless `classes` names some; the run's transform."""
    run = model.run_config.data
    own = data is None or data == run.dataset
    spec = run.dataset if own else data
    chosen = split or ("all" if not own and ":" in spec else "test")
    config = dataclasses.replace(run, dataset=spec, classes=classes, limit=None, binarize=binarize)
    config.validate()
    loaded = load_data(config, chosen, data_dir, transform=model.data_transform)
    if loaded.image_shape != model.image_shape:
        raise DataError(
            f"{spec}: examples of shape {loaded.image_shape}, but the model takes "
            f"{model.image_shape}"
        )
    return loaded.to(next(model.parameters()).device)


def encode_data(
    model: VAE | str | Path,
    data: str | None = None,
    split: str | None = None,
    classes: str | None = None,
    output: str | Path | None = None,
    data_dir: str | Path | None = None,
    batch_size: int = 1000,
    device: str = "auto",
) -> Encoding:
    """Posterior means and log-variances (every latent group) and labels of a split or
    any data (see `_examples`), batched; written to `output` (.npz or .csv) when given.
    Images are encoded under the run's binarisation (a dynamic run: one draw, seed 0)."""
    model, _ = _loaded(model, device)
    binarize = model.run_config.data.binarize
    examples = _examples(model, data, split, classes, data_dir, binarize)
    examples.images = evaluation_images(examples.images, binarize, 0)
    encoding = encode_split(model, examples, batch_size)
    if output is not None:
        encoding.write(output)
    return encoding


def score_data(
    model: VAE | str | Path,
    data: str | None = None,
    split: str | None = None,
    classes: str | None = None,
    output: str | Path | None = None,
    config: EvalConfig | None = None,
    data_dir: str | Path | None = None,
    top: int = 64,
    progress: bool = True,
) -> Scores:
    """Per-example -log p(x) (importance-weighted, `config.k`, default 100), -ELBO and
    reconstruction error of a split or any data (see `_examples`), as `vaekit evaluate`
    draws them. With `output` (.csv), the scores go there and, for images, a picture of
    the `top` most anomalous beside it (`<name>-most-anomalous.png`)."""
    config = config or EvalConfig(k=100, fid=False)
    config.validate()
    if output is not None and Path(output).suffix.lower() != ".csv":
        raise ConfigError(f"-o {output}: scores are written as .csv")
    model, _ = _loaded(model, config.device)
    binarize = model.run_config.data.binarize if config.binarize == "run" else config.binarize
    examples = _examples(model, data, split, classes, data_dir, binarize).subset(config.limit)
    scores = score_split(model, examples, config, binarize, progress)
    if output is not None:
        scores.written.append(scores.write_csv(output))
        if top > 0 and not examples.is_vectors:
            picture = Path(output).with_name(Path(output).stem + "-most-anomalous.png")
            scores.written.append(anomaly_picture(examples, scores, picture, top))
    return scores
