"""One function per subcommand: each calls one API function and prints what it did.

These import torch (through the API); `vaekit.cli.entry` imports this module only
after the command line has parsed, so help and usage errors never wait for it.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from vaekit import api, checkpoint, distributed, pictures, presets, pretrained, report
from vaekit.bench import runner as bench_suite
from vaekit.cli.parser import eval_config, overrides
from vaekit.config import RunConfig, apply_overrides
from vaekit.data import load_data, to_unit
from vaekit.distributed import world_from_env
from vaekit.errors import ConfigError
from vaekit.export import ExportOptions, export_model
from vaekit.models import MODELS
from vaekit.runfolder import EXPLORER, RunFolder


def _model_source(args: argparse.Namespace) -> Path:
    """The checkpoint a command reads: the positional path, or a shipped model's file."""
    if (args.checkpoint is None) == (args.pretrained is None):
        raise ConfigError("give a run folder / checkpoint, or --pretrained NAME (one of them)")
    return pretrained.path(args.pretrained) if args.pretrained else args.checkpoint


def cmd_train(args: argparse.Namespace) -> int:
    given = overrides(args)
    world = world_from_env()
    if args.nproc > 1 and not world.distributed:
        return distributed.launch(_torchrun_argv(args), args.nproc)
    progress = not args.no_progress
    if args.resume:
        if args.config or args.out or args.preset:
            raise ConfigError(
                "--resume takes its config and folder from the run; drop --config/--preset/--out"
            )
        named = {name: value for (_, name), value in given.items()}
        run_dir = api.resume(args.resume, progress=progress, **named)
    else:
        config = apply_overrides(base_config(args), given)
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
        config = apply_overrides(base_config(args), overrides(args))
        argv += ["--out", str(api.default_run_dir(config))]
    return argv


def _positive(n: int, what: str) -> int:
    if n <= 0:
        raise ConfigError(f"{what} must be > 0; got {n}")
    return n


def cmd_sample(args: argparse.Namespace) -> None:
    model = api.load(_model_source(args), args.device)
    n = _positive(args.n, "-n")
    per_row = 8
    if args.sampler == "gmm":
        components = _positive(args.components, "--components")
        images = api.sample_gmm(model, n, args.seed, components, args.data_dir, args.label)
    elif args.label is not None:
        images = pictures.sample(model, n, args.seed, args.label)
    elif model.classes:  # a conditional model: one row per class
        per_row = max(1, n // model.classes)
        images = api.class_samples(model, per_row, args.seed)
        print(f"One row per class (labels 0 .. {model.classes - 1}), {per_row} samples each")
    else:  # images as a PNG grid, or a table's rows as CSV
        print(f"Wrote {api.write_samples(model, n, args.seed, args.output)}")
        return
    print(f"Wrote {pictures.save_png(pictures.grid(images, per_row), args.output, scale=2)}")


def cmd_reconstruct(args: argparse.Namespace) -> None:
    model = api.load(_model_source(args), args.device)
    if model.data_transform is not None:
        raise ConfigError("reconstruct draws images; for a table's rows use vaekit score or encode")
    data = model.run_config.data
    test = load_data(dataclasses.replace(data, limit=None), "test", args.data_dir)
    n = _positive(args.n, "-n")
    x = to_unit(test.images[:n]).to(next(model.parameters()).device)
    grid = pictures.reconstruction_grid(model, x, labels=test.labels[:n])  # conditional: given y
    print(f"Wrote {pictures.save_png(grid, args.output, scale=2)}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    source = _model_source(args)
    beside = Path(f"eval-{args.pretrained}.json") if args.pretrained else None
    result = api.evaluate_model(
        source,
        eval_config(args),
        args.data_dir,
        progress=not args.no_progress,
        output=args.output or beside,
    )
    print(
        f"{result.dataset} test split, {result.images} images, "
        f"binarize {result.binarize}, {result.config['precision']}, {result.device}"
    )
    print(report.format_table(report.eval_rows(result)))
    if "value" in result.extra.get("fid_gmm", {}):
        gmm = result.extra["fid_gmm"]
        print(f"FID of the gmm sampler ({gmm['components']} components): {gmm['value']:.3f}")
    if "label_accuracy" in result.extra:
        read = result.extra["label_accuracy"]
        print(
            f"Samples read as the asked label by the {read['classifier']} classifier: "
            f"{100 * read['accuracy']:.2f} % ({read['samples_per_label']} per label)"
        )
    if "conditional" in result.extra:
        print(f"A conditional model: {result.extra['conditional']}")
    print(f"Wrote {result.extra['written']}")
    if "report" in result.extra:
        print(f"Updated {result.extra['report']}")
    if "traversal" in result.extra:
        print(f"Wrote {result.extra['traversal']}")


def cmd_encode(args: argparse.Namespace) -> None:
    model = api.load(_model_source(args), args.device)
    encoding = api.encode_data(
        model,
        args.data,
        args.split,
        args.classes,
        args.output,
        args.data_dir,
        _positive(args.batch_size, "--batch-size"),
    )
    groups = " + ".join(str(n) for n in encoding.groups)
    print(f"Wrote {args.output}: {len(encoding.mu)} examples, latent groups of {groups}")


def cmd_score(args: argparse.Namespace) -> None:
    config = eval_config(args, k=100, fid=False)
    scores = api.score_data(
        _model_source(args),
        args.data,
        args.split,
        args.classes,
        args.output,
        config,
        args.data_dir,
        max(args.top, 0),
        progress=not args.no_progress,
    )
    print(
        f"{len(scores)} examples in {scores.seconds:.1f} s; mean -log p(x) "
        f"{scores.neg_log_px.mean():.2f} nats (k = {scores.k})"
    )
    for path in scores.written:
        print(f"Wrote {path}")


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
    options = ExportOptions(tuple(args.eval), args.half)
    for path in export_model(args.run_dir, args.output, args.format, options):
        print(f"Wrote {path}")


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
    "encode": cmd_encode,
    "score": cmd_score,
    "plot": cmd_plot,
    "explore": cmd_explore,
    "bench": cmd_bench,
    "export": cmd_export,
    "models": cmd_models,
    "presets": cmd_presets,
}
