"""`vaekit` command line: parses, calls the Python API, prints. Nothing else."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from vaekit import api, checkpoint, distributed, pictures, presets, pretrained, report
from vaekit.bench import suite as bench_suite
from vaekit.config import (
    EvalConfig,
    RunConfig,
    TrainConfig,
    apply_overrides,
    coerce,
    config_fields,
    flag_name,
)
from vaekit.data import load_data, to_unit
from vaekit.distributed import world_from_env
from vaekit.errors import ConfigError, VaekitError, one_line
from vaekit.models import MODELS
from vaekit.runfolder import EXPLORER, RunFolder


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors become ConfigError so they print one line, exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(message)


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per config field, generated so the CLI cannot drift from the dataclasses."""
    groups: dict[str, Any] = {}
    for section, f in config_fields():
        group = groups.setdefault(section, parser.add_argument_group(f"{section} options"))
        kwargs: dict[str, Any] = {"dest": f"cfg:{section}:{f.name}", "default": None}
        default = f" (default: {f.default})"
        if f.type in (bool, "bool"):
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["metavar"] = f.name.upper()
            if f.metadata.get("choices"):
                kwargs["choices"] = f.metadata["choices"]
        flags = [flag_name(f), *f.metadata.get("aliases", ())]
        group.add_argument(*flags, help=f.metadata["help"] + default, **kwargs)


def _overrides(args: argparse.Namespace) -> dict[tuple[str, str], Any]:
    fields_by_key = {(s, f.name): f for s, f in config_fields()}
    out = {}
    for dest, value in vars(args).items():
        if dest.startswith("cfg:") and value is not None:
            _, section, name = dest.split(":")
            out[(section, name)] = coerce(
                fields_by_key[(section, name)], value, flag_name(fields_by_key[(section, name)])
            )
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="vaekit", description="Variational autoencoders: train, sample, look.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    train = sub.add_parser("train", help="train a model (defaults: the seed notebook)")
    train.add_argument("--config", type=Path, help="JSON or TOML config file; flags override it")
    train.add_argument(
        "--preset", help="a named configuration (see `vaekit presets`); flags override it"
    )
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
    _add_config_flags(train)

    sample = sub.add_parser("sample", help="decode draws from the prior into a PNG grid")
    _add_model_source(sample)
    sample.add_argument("-n", type=int, default=64, help="number of images (default 64)")
    sample.add_argument("-o", "--output", type=Path, default=Path("samples.png"))
    sample.add_argument("--seed", type=int, default=0)
    _add_device(sample)

    recon = sub.add_parser("reconstruct", help="test images above their reconstructions")
    _add_model_source(recon)
    recon.add_argument("-n", type=int, default=32, help="number of test images (default 32)")
    recon.add_argument("-o", "--output", type=Path, default=Path("reconstructions.png"))
    recon.add_argument("--data-dir", help="where the dataset's files are")
    _add_device(recon)

    evaluate = sub.add_parser(
        "evaluate", help="test -ELBO, log-likelihood (importance-weighted), active units, FID"
    )
    _add_model_source(evaluate)
    evaluate.add_argument(
        "-o", "--output", type=Path, help="JSON file (default: eval.json beside the checkpoint)"
    )
    evaluate.add_argument("--data-dir", help="where the dataset's files are")
    evaluate.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_eval_flags(evaluate)

    plot = sub.add_parser("plot", help="latent-space pictures and report.html for a run")
    plot.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="run folder")
    plot.add_argument("--data-dir", help="where the dataset's files are")
    _add_device(plot)

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
    _add_device(explore)

    bench = sub.add_parser(
        "bench", help="time the seed notebook, the matmul floor, vaekit and pythae side by side"
    )
    bench.add_argument("--data-dir", help="where MNIST's files are")
    bench.add_argument("--epochs", type=int, help="epochs per training run (default 10)")
    bench.add_argument("--repetitions", type=int, help="runs per measurement (default 3)")
    bench.add_argument("--parts", help="comma-separated subset of: " + ",".join(bench_suite.PARTS))
    bench.add_argument("--precisions", help="comma-separated (default fp32,bf16,fp16)")
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

    export = sub.add_parser(
        "export", help="write a run's weights (no optimiser state) with its figures, to share"
    )
    export.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="run folder")
    export.add_argument("-o", "--output", type=Path, required=True, help="the .safetensors file")
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

    sub.add_parser("models", help="list the registered model architectures")
    sub.add_parser("presets", help="list the named configurations for `train --preset`")
    return parser


def _add_device(parser: argparse.ArgumentParser, default: str | None = "auto") -> None:
    """--device, with the choices TrainConfig declares (the one list of them)."""
    choices = _field(TrainConfig, "device").metadata["choices"]
    parser.add_argument(
        "--device",
        default=default,
        choices=choices,
        help=f"where to compute: {', '.join(choices)} (default: {default or 'auto'})",
    )


def _field(cls: type, name: str) -> Any:
    return next(f for f in dataclasses.fields(cls) if f.name == name)


def _add_model_source(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, nargs="?", help="run folder or checkpoint file")
    parser.add_argument(
        "--pretrained",
        metavar="NAME",
        help="a model shipped with vaekit instead (" + ", ".join(pretrained.names()) + ")",
    )


def _model_source(args: argparse.Namespace) -> Path:
    """The checkpoint a command reads: the positional path, or a shipped model's file."""
    if (args.checkpoint is None) == (args.pretrained is None):
        raise ConfigError("give a run folder / checkpoint, or --pretrained NAME (one of them)")
    return pretrained.path(args.pretrained) if args.pretrained else args.checkpoint


def cmd_train(args: argparse.Namespace) -> int:
    overrides = _overrides(args)
    world = world_from_env()
    if args.nproc > 1 and not world.distributed:
        return distributed.launch(_torchrun_argv(args), args.nproc)
    progress = not args.no_progress
    if args.resume:
        if args.config or args.out or args.preset:
            raise ConfigError(
                "--resume takes its config and folder from the run; drop --config/--preset/--out"
            )
        named = {name: value for (_, name), value in overrides.items()}
        run_dir = api.resume(args.resume, progress=progress, **named)
    else:
        config = apply_overrides(base_config(args), overrides)
        if world.distributed and not args.out:
            raise ConfigError("under torchrun, pass --out so that every process uses one folder")
        run_dir = api.train(config, args.out, progress=progress)
    if world.is_main:
        print(f"Run folder: {run_dir}")
    return 0


def base_config(args: argparse.Namespace) -> RunConfig:
    """The config that flags override: --config's file, --preset's, or the seed's defaults."""
    if args.config and args.preset:
        raise ConfigError("give --config or --preset, not both")
    if args.preset:
        return presets.load(args.preset)
    return RunConfig.load(args.config) if args.config else RunConfig()


def _torchrun_argv(args: argparse.Namespace) -> list[str]:
    """This command line without --nproc, with --out fixed so every process agrees on it."""
    argv = list(args.argv)
    at = next(i for i, a in enumerate(argv) if a == "--nproc" or a.startswith("--nproc="))
    del argv[at : at + (1 if "=" in argv[at] else 2)]
    if not args.out and not args.resume:
        config = apply_overrides(base_config(args), _overrides(args))
        argv += ["--out", str(api.default_run_dir(config))]
    return argv


def _positive(n: int, what: str) -> int:
    if n <= 0:
        raise ConfigError(f"{what} must be > 0; got {n}")
    return n


def cmd_sample(args: argparse.Namespace) -> None:
    model = api.load(_model_source(args), args.device)
    images = pictures.sample(model, _positive(args.n, "-n"), args.seed)
    print(f"Wrote {pictures.save_png(pictures.grid(images), args.output, scale=2)}")


def cmd_reconstruct(args: argparse.Namespace) -> None:
    model = api.load(_model_source(args), args.device)
    data = model.run_config.data
    test = load_data(dataclasses.replace(data, limit=None), "test", args.data_dir)
    x = to_unit(test.images[: _positive(args.n, "-n")]).to(next(model.parameters()).device)
    print(
        f"Wrote {pictures.save_png(pictures.reconstruction_grid(model, x), args.output, scale=2)}"
    )


def _add_eval_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per EvalConfig field, as the train flags come from RunConfig."""
    for f in dataclasses.fields(EvalConfig):
        names = ["-k"] if f.name == "k" else [flag_name(f)]
        help_text = f"{f.metadata['help']} (default: {f.default})"
        kwargs: dict[str, Any] = {"dest": f"eval:{f.name}", "default": None, "help": help_text}
        if f.type in (bool, "bool"):
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["metavar"] = f.name.upper()
            kwargs["choices"] = f.metadata.get("choices")
        parser.add_argument(*names, **kwargs)


def _eval_config(args: argparse.Namespace) -> EvalConfig:
    values = {}
    for f in dataclasses.fields(EvalConfig):
        value = getattr(args, f"eval:{f.name}")
        if value is not None:
            values[f.name] = coerce(f, value, "-k" if f.name == "k" else flag_name(f))
    config = EvalConfig(**values)
    config.validate()
    return config


def cmd_evaluate(args: argparse.Namespace) -> None:
    source = _model_source(args)
    beside = Path(f"eval-{args.pretrained}.json") if args.pretrained else None
    result = api.evaluate_model(
        source,
        _eval_config(args),
        args.data_dir,
        progress=not args.no_progress,
        output=args.output or beside,
    )
    print(
        f"{result.dataset} test split, {result.images} images, "
        f"binarize {result.binarize}, {result.config['precision']}, {result.device}"
    )
    print(report.format_table(report.eval_rows(result)))
    print(f"Wrote {result.extra['written']}")
    if "report" in result.extra:
        print(f"Updated {result.extra['report']}")


def cmd_plot(args: argparse.Namespace) -> None:
    for path in api.plot(args.run_dir, args.data_dir, args.device):
        print(f"Wrote {path}")
    print(f"Wrote {RunFolder(args.run_dir).report_path}")


def cmd_explore(args: argparse.Namespace) -> None:
    from vaekit import explore  # http.server and the page's assets: only when asked for

    source = _model_source(args)
    default = Path(f"explorer-{args.pretrained}") if args.pretrained else None
    out = args.output or default or checkpoint.resolve_path(source).parent / EXPLORER
    page = explore.write_explorer(source, out, args.data_dir, args.points, args.device)
    print(f"Wrote {page}")
    if args.serve:
        explore.serve(out, args.port, args.host, announce=lambda line: print(line, flush=True))


def cmd_bench(args: argparse.Namespace) -> int:
    names = ("data_dir", "epochs", "repetitions", "device", "threads", "limit", "eval_k")
    names += ("eval_images", "scaling_epochs", "work_dir", "pythae_python")
    values = {name: getattr(args, name) for name in names}
    for name in ("parts", "precisions"):
        if getattr(args, name):
            values[name] = tuple(getattr(args, name).split(","))
    if args.quick:
        options = bench_suite.BenchOptions.quick_options(**values)
    else:
        options = bench_suite.BenchOptions(**{k: v for k, v in values.items() if v is not None})

    written: list[Path] = []

    def save(report: dict) -> None:  # after every part: a cut-short run keeps what it measured
        written[:] = bench_suite.write(report, args.json, args.markdown)

    result = bench_suite.run(options, after_part=save)  # the last part's save is the report
    for path in written:
        print(f"Wrote {path}")
    if result["failures"]:  # the report holds the rest; the exit status says it is partial
        print(
            f"vaekit: error: bench part(s) failed: {', '.join(result['failures'])}", file=sys.stderr
        )
        return 1
    return 0


def cmd_export(args: argparse.Namespace) -> None:
    written = pretrained.export(args.run_dir, args.output, tuple(args.eval), args.half)
    print(f"Wrote {written}")


def cmd_models(args: argparse.Namespace) -> None:
    for name, cls in sorted(MODELS.items()):
        print(f"{name:8s} {(cls.__doc__ or '').strip().splitlines()[0]}")


def cmd_presets(args: argparse.Namespace) -> None:
    for name in presets.names():
        print(f"{name:14s} {presets.about(name)}")


COMMANDS = {
    "train": cmd_train,
    "sample": cmd_sample,
    "reconstruct": cmd_reconstruct,
    "evaluate": cmd_evaluate,
    "plot": cmd_plot,
    "explore": cmd_explore,
    "bench": cmd_bench,
    "export": cmd_export,
    "models": cmd_models,
    "presets": cmd_presets,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
        args.argv = argv
        code = COMMANDS[args.command](args)
    except VaekitError as exc:
        if debug:
            raise
        if world_from_env().is_main:  # under torchrun, one line from rank 0, not one per rank
            print(f"vaekit: error: {one_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # e.g. an unwritable --out folder: the OS's reason, one line
        if debug:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"vaekit: error: {one_line(f'{where}{exc.strerror or exc}')}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("vaekit: interrupted", file=sys.stderr)
        return 130
    return code or 0
