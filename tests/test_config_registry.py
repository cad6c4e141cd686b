"""vaekit.config is a leaf: one source per choice list, implementations registered into it,
and the command line's flags built from it without torch."""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from vaekit.cli import main
from vaekit.cli.parser import build_parser
from vaekit.config import DataConfig, EvalConfig, RunConfig, TrainConfig, registry
from vaekit.config.families import ModelConfig, family_class
from vaekit.config.flags import config_flags
from vaekit.config.registry import Registry
from vaekit.errors import ConfigError

SRC = Path(__file__).resolve().parents[1] / "src"
CONFIG = SRC / "vaekit" / "config"

# Every flag `vaekit train` had before model families, with its aliases.
FLAGS_BEFORE = [
    "--dataset",
    "--data",
    "--data-dir",
    "--download",
    "--limit",
    "--binarize",
    "--image-size",
    "--image-mode",
    "--test-fraction",
    "--model",
    "--latent-dim",
    "--hidden-dim",
    "--channels",
    "--likelihood",
    "--sigma",
    "--groups",
    "--objective",
    "--iwae-k",
    "--beta",
    "--warmup-epochs",
    "--free-bits",
    "--epochs",
    "--batch-size",
    "--lr",
    "--lr-schedule",
    "--lr-final",
    "--lr-decay-epochs",
    "--skip-grad-norm",
    "--seed",
    "--device",
    "--precision",
    "--eval-batch-size",
    "--max-grad-norm",
    "--max-bad-steps",
    "--pictures",
    "--no-pictures",
    "--plots",
    "--no-plots",
    "--no-download",
]


# --------------------------------------------------------------------------- a leaf


def test_importing_config_loads_no_other_vaekit_module_and_no_torch():
    """In a fresh interpreter: config, with the CLI's flag descriptions, needs errors alone."""
    code = (
        "import json, sys\n"
        "import vaekit.config, vaekit.config.flags\n"
        "vaekit.config.flags.config_flags()\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(SRC), "PATH": ""},
    ).stdout
    loaded = json.loads(out)
    ours = [m for m in loaded if m == "vaekit" or m.startswith("vaekit.")]
    package = ("vaekit", "vaekit._version", "vaekit.errors", "vaekit.config")  # the root, leaves
    others = [m for m in ours if m not in package]
    assert all(m.startswith("vaekit.config.") for m in others), others
    assert "vaekit.config.families.mlp" in ours
    assert not {"torch", "numpy", "safetensors"} & set(loaded)


def _imports(path: Path) -> list[str]:
    """Every module an import statement in `path` names, in functions too."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            names += [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
    return names


def test_config_source_imports_only_errors_and_itself():
    """No import of another vaekit module anywhere in config, hidden in a function or not."""
    files = sorted(CONFIG.rglob("*.py"))
    assert len(files) >= 8
    for path in files:
        for name in _imports(path):
            if name.startswith("vaekit."):
                assert name.startswith(("vaekit.errors", "vaekit.config")), f"{path}: {name}"


def _first_level_graph() -> dict[str, set[str]]:
    """vaekit's first-level modules and sub-packages -> those they import (any import)."""
    graph: dict[str, set[str]] = {}
    for path in (SRC / "vaekit").rglob("*.py"):
        unit = path.relative_to(SRC / "vaekit").parts[0].removesuffix(".py")
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] == "vaekit" and len(parts) > 1 and parts[1] != unit:
                target = parts[1]
                if (SRC / "vaekit" / target).is_dir() or (
                    SRC / "vaekit" / f"{target}.py"
                ).is_file():
                    graph.setdefault(unit, set()).add(target)
    return graph


def test_config_is_in_no_import_cycle():
    graph = _first_level_graph()
    assert graph["config"] == {"errors"}
    assert "errors" not in graph  # errors imports nothing of vaekit: nothing leads back
    reaching_config = {unit for unit, targets in graph.items() if "config" in targets}
    assert {"models", "data", "likelihoods", "schedules", "objectives", "runtime"} <= (
        reaching_config
    )


# --------------------------------------------------------------------------- one source each


@pytest.mark.parametrize(
    "kind", [r for r in registry.ALL if r.implemented_by], ids=lambda r: r.kind
)
def test_every_declared_name_has_exactly_one_implementation(kind: Registry):
    importlib.import_module(kind.implemented_by)
    assert kind.missing() == ()
    assert sorted(kind.implementations) == sorted(kind.names())


def test_names_only_kinds_agree_with_the_code_that_reads_them():
    from vaekit import data, runtime
    from vaekit.data.imagefiles import PIL_MODES

    assert registry.BINARIZE.names() == data.BINARIZE
    assert set(PIL_MODES) == set(registry.IMAGE_MODE) - {"auto"}
    assert str(runtime.resolve_device("cpu")) == "cpu"
    with pytest.raises(ConfigError, match="device must be one of auto, cpu, cuda"):
        runtime.resolve_device("tpu")


def test_the_config_fields_choices_are_the_registries():
    def choices(cls: type, name: str):
        return next(f for f in cls.__dataclass_fields__.values() if f.name == name).metadata[
            "choices"
        ]

    assert choices(TrainConfig, "lr_schedule") is registry.SCHEDULE
    assert choices(TrainConfig, "precision") is registry.PRECISION
    assert choices(TrainConfig, "device") is registry.DEVICE
    assert choices(EvalConfig, "device") is registry.DEVICE
    assert choices(DataConfig, "binarize") is registry.BINARIZE
    assert choices(EvalConfig, "binarize") == ("run", *registry.BINARIZE)
    for name in registry.MODEL:
        assert choices(family_class(name), "likelihood") is registry.LIKELIHOOD


def test_registries_refuse_undeclared_and_repeated_names():
    with pytest.raises(ValueError, match="'poisson' is not declared"):
        registry.LIKELIHOOD.register("poisson", object())
    with pytest.raises(ValueError, match="registered twice"):
        registry.SCHEDULE.register("constant", object())
    kind = Registry("colour", ("red",))
    with pytest.raises(ValueError, match="declared twice"):
        kind.declare("red")
    with pytest.raises(ConfigError, match="'red' has no implementation"):
        kind.get("red")
    with pytest.raises(ConfigError, match="unknown colour 'blue'; known colours: red"):
        kind.get("blue")


def test_a_network_for_an_undeclared_family_is_refused():
    from vaekit.models import register

    class Stray(ModelConfig):  # not decorated with @model_family
        name = "stray"

    with pytest.raises(ConfigError, match="unknown model 'stray'"):
        register(Stray)(type("StrayVAE", (), {}))
    with pytest.raises(ValueError, match="registered twice"):
        register(family_class("mlp"))(type("AnotherMLP", (), {}))


def test_an_unknown_objective_is_an_error_not_the_elbo():
    import torch

    from vaekit.models.base import Latent, VAEOutput
    from vaekit.objectives import training_terms

    out = VAEOutput([Latent(*torch.zeros(3, 2, 4))], torch.zeros(2, 1, 2, 2))
    with pytest.raises(ConfigError, match="unknown objective 'vae'"):
        training_terms(torch.zeros(2, 1, 2, 2), out, objective="vae")


# --------------------------------------------------------------------------- flags


def test_every_flag_from_before_still_exists():
    train = build_parser()._subparsers._group_actions[0].choices["train"]  # type: ignore[union-attr]
    given = {option for action in train._actions for option in action.option_strings}
    assert set(FLAGS_BEFORE) <= given


def test_model_flags_are_the_union_and_say_which_families_they_apply_to():
    flags = {flag.names[0]: flag for flag in config_flags() if flag.section == "model"}
    assert set(flags) == {"--model", "--latent-dim", "--hidden-dim", "--channels", "--groups"} | {
        "--likelihood",
        "--sigma",
        *("--prior", "--pseudo-inputs", "--flow", "--flow-steps", "--condition", "--labels"),
        *("--codebook-size", "--code-dim", "--commitment", "--ema-decay"),
        *("--dead-code-threshold", "--codes-from", "--prior-width", "--prior-layers"),
        "--prior-heads",
    }
    assert flags["--condition"].families == ("mlp", "conv", "resconv", "hvae", "iwae-1l")
    assert flags["--prior"].families == ("mlp", "conv", "resconv", "hvae", "iwae-1l")
    assert flags["--flow"].families == ("mlp", "conv", "resconv", "iwae-1l")
    assert flags["--flow"].choices == registry.FLOW.names()
    assert flags["--groups"].families == ("hvae",)
    assert flags["--groups"].help.startswith("hvae: ")
    assert flags["--channels"].families == ("conv", "resconv", "vq", "vq-prior")
    assert flags["--channels"].help.startswith("conv, resconv, vq, vq-prior: ")
    gaussian = ("mlp", "conv", "resconv", "hvae", "iwae-1l", "iwae-2l")  # vq has codes, no z
    assert flags["--latent-dim"].families == gaussian  # with each family's meaning:
    assert "hvae: latent units per group" in flags["--latent-dim"].help
    assert flags["--latent-dim"].help.endswith("(default: 2)")
    assert flags["--likelihood"].choices == registry.LIKELIHOOD.names()


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--groups", "3"], "--groups does not apply to model mlp (only to hvae)"),
        (["--model", "hvae", "--channels", "8"], "--channels does not apply to model hvae"),
        (["--preset", "mnist-hvae", "--model", "conv", "--groups", "2"], "model conv"),
    ],
)
def test_a_flag_the_family_lacks_is_a_one_line_error(argv, words, capsys):
    assert main(["train", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err


def test_model_flags_reach_the_family_config():
    from vaekit.cli.commands import base_config
    from vaekit.cli.parser import overrides
    from vaekit.config import HVAEConfig, apply_overrides

    argv = ["train", "--model", "hvae", "--groups", "2", "--latent-dim", "5", "--sigma", "0.2"]
    args = build_parser().parse_args(argv)
    config = apply_overrides(base_config(args), overrides(args))
    assert config.model == HVAEConfig(groups=2, latent_dim=5, sigma=0.2)
    assert RunConfig.from_dict(config.to_dict()) == config
