"""The argument parser, built without torch: `vaekit --help` and every subcommand's
help answer at once, and list their choices (devices, precisions, models, formats).

Prefix matching is off (`--epoch` is not `--epochs`); a usage error is one line,
with the nearest flag or name suggested (`vaekit.cli.suggest`).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from vaekit import pretrained
from vaekit._version import __version__
from vaekit.bench.options import PARTS
from vaekit.cli.suggest import improve
from vaekit.config import EvalConfig, coerce, flag_name, registry
from vaekit.config.flags import config_flags
from vaekit.errors import ConfigError
from vaekit.export import FORMATS


class Parser(argparse.ArgumentParser):
    """argparse, without abbreviations, whose usage errors are one-line ConfigErrors."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, allow_abbrev=False, **kwargs)
        self._words: list[str] = []

    def parse_args(self, args: Any = None, namespace: Any = None) -> Any:  # type: ignore[override]
        self._words = list(sys.argv[1:] if args is None else args)  # for error()'s suggestion
        return super().parse_args(args, namespace)

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(improve(message, self._flags()))

    def _flags(self) -> list[str]:
        """This parser's flags and, once a subcommand is named, that subcommand's."""
        flags = [flag for action in self._actions for flag in action.option_strings]
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                chosen = next((w for w in self._words if w in action.choices), None)
                if chosen:
                    parser = action.choices[chosen]
                    flags += [flag for a in parser._actions for flag in a.option_strings]
        return flags


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="vaekit", description="Variational autoencoders: train, sample, look.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--version", action="version", version=f"vaekit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    adders = (_train, _sample, _reconstruct, _evaluate, _encode, _score, _plot, _explore)
    for add in (*adders, _bench, _export):
        add(sub)
    sub.add_parser("models", help="list the registered model architectures")
    sub.add_parser("presets", help="list the named configurations for `train --preset`")
    return parser


def _train(sub: Any) -> None:
    train = sub.add_parser("train", help="train a model (defaults: the seed notebook)")
    train.add_argument("--config", type=Path, help="JSON or TOML config file; flags override it")
    train.add_argument("--preset", help="a named configuration (see `vaekit presets`)")
    train.add_argument(
        "--out", type=Path, help="run folder (default: runs/<dataset>-<model>-<time>)"
    )
    train.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue the run in RUN_DIR")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument(
        "--nproc",
        type=int,
        default=1,
        metavar="N",
        help="data-parallel processes on this machine (launches torchrun; see README)",
    )
    _add_config_flags(train)  # --threads among them: a run keeps its count


def _sample(sub: Any) -> None:
    sample = sub.add_parser("sample", help="decode draws from the prior into a PNG grid")
    _add_model_source(sample)
    sample.add_argument("-n", type=int, default=64, help="number of images (default 64)")
    sample.add_argument(
        "-o",
        "--output",
        type=Path,
        help="PNG file (samples.png); for a table model CSV rows in its units (samples.csv)",
    )
    sample.add_argument("--seed", type=int, default=0, help="seed of the prior draws (default 0)")
    sample.add_argument(
        "--label",
        type=int,
        help="a conditional model's class for every image (default: one row per class; "
        "with --sampler gmm it is required and the mixture is fitted to that class)",
    )
    sample.add_argument(
        "--sampler",
        choices=("prior", "gmm"),
        default="prior",
        help="prior: z ~ p(z); gmm: z from a Gaussian mixture fitted to the training set's "
        "posterior means (default prior)",
    )
    sample.add_argument(
        "--components", type=int, default=10, help="gmm sampler: mixture components (default 10)"
    )
    sample.add_argument("--data-dir", help="gmm sampler: where the dataset's files are")
    _add_compute(sample)


def _reconstruct(sub: Any) -> None:
    recon = sub.add_parser("reconstruct", help="test images above their reconstructions")
    _add_model_source(recon)
    recon.add_argument("-n", type=int, default=32, help="number of test images (default 32)")
    recon.add_argument(
        "-o", "--output", type=Path, default=Path("reconstructions.png"), help="PNG file"
    )
    recon.add_argument("--data-dir", help="where the dataset's files are")
    _add_compute(recon)


def _evaluate(sub: Any) -> None:
    evaluate = sub.add_parser(
        "evaluate", help="test -ELBO, log-likelihood (importance-weighted), active units, FID"
    )
    _add_model_source(evaluate)
    evaluate.add_argument(
        "-o", "--output", type=Path, help="JSON file (default: eval.json beside the checkpoint)"
    )
    evaluate.add_argument("--data-dir", help="where the dataset's files are")
    evaluate.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_threads(evaluate)
    _add_eval_flags(evaluate)


def _add_examples(parser: argparse.ArgumentParser) -> None:
    """Which examples encode and score read: the run's own, or other data."""
    parser.add_argument(
        "--data",
        metavar="DATA",
        help="other data: mnist, fashion-mnist or KIND:PATH (default: the run's own)",
    )
    parser.add_argument(
        "--split",
        choices=("train", "validation", "test", "all"),
        help="which split (default: test; every row of another KIND:PATH file; validation: "
        "the training examples the run's --validation N held out, every class)",
    )
    parser.add_argument(
        "--classes", help="only these labels, comma-separated (default: every class)"
    )
    parser.add_argument("--data-dir", help="where the dataset's files are")


def _encode(sub: Any) -> None:
    encode = sub.add_parser(
        "encode", help="posterior means and log-variances (and labels) of a split, to a file"
    )
    _add_model_source(encode)
    _add_examples(encode)
    encode.add_argument(
        "-o", "--output", type=Path, required=True, help=".npz (named arrays) or .csv file"
    )
    encode.add_argument(
        "--batch-size", type=int, default=1000, help="examples encoded together (default 1000)"
    )
    _add_compute(encode)


def _score(sub: Any) -> None:
    score = sub.add_parser(
        "score", help="per example: -log p(x), -ELBO, reconstruction error (anomaly scores)"
    )
    _add_model_source(score)
    _add_examples(score)
    score.add_argument(
        "-o", "--output", type=Path, default=Path("scores.csv"), help="CSV file (scores.csv)"
    )
    score.add_argument(
        "--top",
        type=int,
        default=64,
        help="images: picture the N most anomalous beside the CSV (default 64; 0: none)",
    )
    score.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_threads(score)
    _add_eval_flags(score, skip=("fid",), defaults={"k": 100})


def _plot(sub: Any) -> None:
    plot = sub.add_parser("plot", help="latent-space pictures and report.html for a run")
    plot.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="run folder")
    plot.add_argument("--data-dir", help="where the dataset's files are")
    _add_compute(plot)


def _explore(sub: Any) -> None:
    explore = sub.add_parser(
        "explore", help="write a web page that decodes the latent space live in the browser"
    )
    _add_model_source(explore)
    explore.add_argument(
        "-o", "--output", type=Path, help="folder for the page (default: explorer/ beside it)"
    )
    explore.add_argument("--data-dir", help="where the dataset's files are")
    explore.add_argument(
        "--points", type=int, default=5000, help="test images on the map (default 5000)"
    )
    explore.add_argument("--serve", action="store_true", help="serve the page on localhost")
    explore.add_argument("--port", type=int, default=8000, help="with --serve; 0: any free port")
    explore.add_argument("--host", default="127.0.0.1", help="with --serve: address to listen on")
    _add_compute(explore)


def _bench(sub: Any) -> None:
    bench = sub.add_parser(
        "bench", help="time the seed notebook, the matmul floor, vaekit and pythae side by side"
    )
    bench.add_argument("--data-dir", help="where MNIST's files are")
    bench.add_argument("--epochs", type=int, help="epochs per training run (default 10)")
    bench.add_argument("--repetitions", type=int, help="runs per measurement (default 3)")
    bench.add_argument("--parts", help="comma-separated subset of: " + ",".join(PARTS))
    precisions = ",".join(registry.PRECISION.names())
    bench.add_argument("--precisions", help=f"comma-separated (default {precisions})")
    _add_device(bench, default=None)
    bench.add_argument("--threads", type=int, help="torch threads in every measured process")
    bench.add_argument("--limit", type=int, help="train on the first N images (default all)")
    bench.add_argument("--pythae-python", help="interpreter of pythae's own virtual environment")
    bench.add_argument("--eval-k", type=int, help="importance samples per image (default 5000)")
    bench.add_argument("--eval-images", type=int, help="test images timed (default 500)")
    bench.add_argument("--scaling-epochs", type=int, help="epochs per scaling run (default 3)")
    bench.add_argument("--work-dir", help="keep the measured run folders here")
    bench.add_argument("--quick", action="store_true", help="a small run, well under a minute")
    bench.add_argument("--json", type=Path, default=Path("bench.json"), help="JSON report")
    bench.add_argument("--markdown", type=Path, default=Path("bench.md"), help="Markdown report")


def _export(sub: Any) -> None:
    export = sub.add_parser("export", help="share a run's model: weights, ONNX, a model folder")
    export.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="run or model folder")
    formats = "; ".join(f"{name}: {about}" for name, (_, about) in FORMATS.items())
    export.add_argument("--format", default="safetensors", choices=list(FORMATS), help=formats)
    export.add_argument("-o", "--output", type=Path, required=True, help="file, else folder")
    export.add_argument(
        "--eval",
        action="append",
        default=[],
        metavar="FILE",
        help="an eval JSON (path relative to the run folder) whose figures travel with the "
        "weights (repeatable)",
    )
    export.add_argument(
        "--half", action="store_true", help="store the weights as float16 (half the size)"
    )


def _add_threads(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="CPU threads to compute on (default: the cores idle at start; see BENCHMARKS.md)",
    )


def _add_compute(parser: argparse.ArgumentParser) -> None:
    _add_device(parser)
    _add_threads(parser)


def _add_device(parser: argparse.ArgumentParser, default: str | None = "auto") -> None:
    """--device, with the choices vaekit.config.registry declares (the one list of them)."""
    choices = registry.DEVICE.names()
    parser.add_argument(
        "--device", default=default, choices=choices, help="where to compute (default: auto)"
    )


def _add_model_source(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, nargs="?", help="run folder or checkpoint file")
    parser.add_argument(
        "--pretrained",
        metavar="NAME",
        help="a model shipped with vaekit instead: " + ", ".join(pretrained.names()),
    )


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per config field (`vaekit.config.flags`); model flags: the union of families'."""
    flags = config_flags()
    sections = dict.fromkeys(flag.section for flag in flags)
    groups = {section: parser.add_argument_group(f"{section} options") for section in sections}
    for flag in flags:
        kwargs: dict[str, Any] = {"dest": flag.dest, "default": None, "help": flag.help}
        if flag.boolean:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif flag.choices:
            kwargs["choices"] = flag.choices  # argparse lists them: {a,b,c}
        else:
            kwargs["metavar"] = flag.field.name.upper()
        groups[flag.section].add_argument(*flag.names, **kwargs)


def overrides(args: argparse.Namespace) -> dict[tuple[str, str], Any]:
    """{(section, field): typed value} of the flags given; `apply_overrides` checks families."""
    given = vars(args)
    return {
        (flag.section, flag.field.name): flag.coerce(given[flag.dest])
        for flag in config_flags()
        if given.get(flag.dest) is not None
    }


def _add_eval_flags(
    parser: argparse.ArgumentParser,
    skip: tuple[str, ...] = (),
    defaults: dict[str, Any] | None = None,
) -> None:
    """One flag per EvalConfig field (but `skip`), as the train flags come from RunConfig;
    `defaults` replaces a field's default in the help (give the same to `eval_config`)."""
    defaults = defaults or {}
    for f in dataclasses.fields(EvalConfig):
        if f.name in skip:
            continue
        names = ["-k"] if f.name == "k" else [flag_name(f)]
        help_text = f"{f.metadata['help']} (default: {defaults.get(f.name, f.default)})"
        kwargs: dict[str, Any] = {"dest": f"eval:{f.name}", "default": None, "help": help_text}
        if f.type in (bool, "bool"):
            kwargs["action"] = argparse.BooleanOptionalAction
        elif f.metadata.get("choices"):
            kwargs["choices"] = tuple(f.metadata["choices"])
        else:
            kwargs["metavar"] = f.name.upper()
        parser.add_argument(*names, **kwargs)


def eval_config(args: argparse.Namespace, **defaults: Any) -> EvalConfig:
    """The EvalConfig of the flags given, over `defaults` (then EvalConfig's own)."""
    values = dict(defaults)
    for f in dataclasses.fields(EvalConfig):
        value = getattr(args, f"eval:{f.name}", None)
        if value is not None:
            values[f.name] = coerce(f, value, "-k" if f.name == "k" else flag_name(f))
    config = EvalConfig(**values)
    config.validate()
    return config
