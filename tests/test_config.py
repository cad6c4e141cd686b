"""Run configuration: the seed's defaults, files in and out, and strict validation.

A typo in a config file must stop a run before it starts, with the offending
key or value named, rather than silently train with a default.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from vaekit import presets
from vaekit.bench import seed_reference
from vaekit.config import (
    ConvConfig,
    HVAEConfig,
    MLPConfig,
    ModelConfig,
    RunConfig,
    apply_overrides,
    family_fields,
    model_config,
)
from vaekit.config.registry import MODEL
from vaekit.errors import ConfigError


def custom() -> RunConfig:
    """A config with a non-default value in every section."""
    config = RunConfig()
    config.data.dataset = "fashion-mnist"
    config.data.data_dir = "/data/somewhere"
    config.data.download = False
    config.model = ConvConfig(latent_dim=16, hidden_dim=256, channels=8)
    config.train.epochs = 3
    config.train.batch_size = 64
    config.train.lr = 2.5e-4
    config.train.seed = 1234
    config.train.device = "cpu"
    config.train.precision = "bf16"
    config.train.pictures = False
    return config


def to_toml(raw: dict[str, dict[str, Any]]) -> str:
    """A minimal TOML writer for flat sections of str/int/float/bool (None is omitted)."""
    lines = []
    for section, values in raw.items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            if value is not None:
                lines.append(f"{key} = {json.dumps(value)}")  # JSON scalars are TOML scalars
        lines.append("")
    return "\n".join(lines)


def with_value(section: str, key: str, value: Any) -> dict[str, Any]:
    """The default config as a dict with one value set; a model key the default family
    lacks switches to the first family that has it."""
    raw = RunConfig().to_dict()
    if section == "model" and key not in raw["model"]:
        raw["model"] = {"name": next(name for name in MODEL if key in family_fields(name))}
    raw[section][key] = value
    return raw


# --------------------------------------------------------------------------- defaults


def test_defaults_are_the_seed_notebook():
    config = RunConfig()
    assert config.model.name == "mlp"
    assert config.model.latent_dim == 2 == seed_reference.latent_dim
    assert config.model.hidden_dim == 400 == seed_reference.hidden_dim
    assert config.train.batch_size == 128 == seed_reference.batch_size
    assert config.train.epochs == 10 == seed_reference.epochs
    assert config.train.lr == 1e-3 == seed_reference.lr
    assert config.data.dataset == "mnist"


def test_defaults_pass_validation():
    config = RunConfig()
    config.validate()
    assert RunConfig.from_dict({}) == config


# --------------------------------------------------------------------------- files


def test_json_round_trip(tmp_path: Path):
    config = custom()
    path = tmp_path / "config.json"
    config.save(path)
    loaded = RunConfig.load(path)
    assert loaded == config
    assert loaded.train.lr == 2.5e-4 and loaded.data.data_dir == "/data/somewhere"
    assert json.loads(path.read_text()) == config.to_dict()


def test_json_keeps_none(tmp_path: Path):
    path = tmp_path / "config.json"
    RunConfig().save(path)
    assert json.loads(path.read_text())["data"]["data_dir"] is None
    assert RunConfig.load(path).data.data_dir is None


def test_toml_round_trip(tmp_path: Path):
    """A TOML file with the same values loads to the same config as its JSON twin."""
    config = custom()
    path = tmp_path / "config.toml"
    path.write_text(to_toml(config.to_dict()))
    assert RunConfig.load(path) == config


def test_partial_toml_keeps_the_other_defaults(tmp_path: Path):
    path = tmp_path / "short.toml"
    path.write_text('[train]\nepochs = 2\n\n[model]\nname = "conv"\n')
    loaded = RunConfig.load(path)
    expected = RunConfig()
    expected.train.epochs = 2
    expected.model = ConvConfig()
    assert loaded == expected


def test_save_refuses_toml_and_a_hand_written_toml_file_loads(tmp_path: Path):
    """save() writes JSON only, so a `.toml` path is refused up front and nothing is
    written; TOML is for files people write, and such a file loads as intended."""
    path = tmp_path / "config.toml"
    with pytest.raises(ConfigError, match="configs are saved as JSON"):
        custom().save(path)
    assert not path.exists()
    path.write_text(
        "# a hand-written config\n"
        '[data]\ndataset = "fashion-mnist"\ndata_dir = "/data/somewhere"\ndownload = false\n\n'
        '[model]\nname = "conv"\nlatent_dim = 16\nhidden_dim = 256\nchannels = 8\n\n'
        "[train]\nepochs = 3\nbatch_size = 64\nlr = 2.5e-4\nseed = 1234\n"
        'device = "cpu"\nprecision = "bf16"\npictures = false\n'
    )
    loaded = RunConfig.load(path)
    assert loaded == custom()
    assert type(loaded.model) is ConvConfig and loaded.model.channels == 8
    assert RunConfig.from_dict(json.loads(loaded.to_json())) == loaded


@pytest.mark.parametrize(
    ("name", "text", "words"),
    [
        ("bad.json", '{"train": {"epochs": 3,}}', "not valid json"),
        ("bad.toml", "[train\nepochs = 3", "not valid toml"),
        ("list.json", "[1, 2]", "must be a mapping"),
    ],
)
def test_unreadable_files(tmp_path: Path, name: str, text: str, words: str):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError, match=words):
        RunConfig.load(path)


def test_missing_file(tmp_path: Path):
    with pytest.raises(ConfigError, match="cannot read config") as info:
        RunConfig.load(tmp_path / "absent.json")
    assert str(tmp_path / "absent.json") in str(info.value)


# --------------------------------------------------------------------------- strictness


def test_unknown_top_level_key():
    with pytest.raises(ConfigError, match="optimiser") as info:
        RunConfig.from_dict({"train": {}, "optimiser": {"lr": 1}})
    assert "known: data, model, objective, train" in str(info.value)


def test_unknown_key_in_a_section(tmp_path: Path):
    """A misspelt field is an error that names it and its section, from a file too."""
    path = tmp_path / "typo.toml"
    path.write_text("[train]\nepoch = 3\n")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) in train: epoch;") as info:
        RunConfig.load(path)
    assert "epochs" in str(info.value)  # the known keys are listed, the right one among them


def test_section_must_be_a_mapping():
    with pytest.raises(ConfigError, match="'model' must be a mapping"):
        RunConfig.from_dict({"model": "mlp"})


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("train", "epochs", "abc"),
        ("train", "epochs", 1.5),
        ("train", "epochs", True),
        ("train", "epochs", [3]),
        ("train", "epochs", None),
        ("model", "latent_dim", "2.5"),
        ("model", "hidden_dim", {"a": 1}),
        ("train", "lr", "fast"),
        ("train", "lr", False),
        ("train", "lr", None),
        ("data", "download", "maybe"),
        ("data", "download", "flase"),
        ("data", "download", 2),
        ("train", "pictures", [True]),
    ],
)
def test_wrong_types(section: str, key: str, value: Any):
    with pytest.raises(ConfigError, match=rf"{section}\.{key} must"):
        RunConfig.from_dict(with_value(section, key, value))


@pytest.mark.parametrize("value", [["/data"], {"path": "/data"}, 5, True])
def test_non_string_for_a_string_field(value: Any):
    """`data_dir = ["/data"]` is a type error, not the folder named "['/data']"."""
    with pytest.raises(ConfigError, match=r"data\.data_dir"):
        RunConfig.from_dict(with_value("data", "data_dir", value))


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("train", "epochs", 4.0, 4),  # an integral float is an int
        ("train", "epochs", "4", 4),  # command-line strings are converted
        ("train", "lr", 1, 1.0),
        ("train", "lr", "3e-4", 3e-4),
        ("data", "download", "false", False),
        ("data", "download", "yes", True),
        ("train", "seed", 0, 0),  # seeds need not be positive
        ("train", "seed", -3, -3),
    ],
)
def test_accepted_conversions(section: str, key: str, value: Any, expected: Any):
    got = getattr(getattr(RunConfig.from_dict(with_value(section, key, value)), section), key)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("model", "latent_dim", 0),
        ("model", "hidden_dim", -1),
        ("model", "channels", 0),
        ("train", "epochs", 0),
        ("train", "batch_size", 0),
        ("train", "batch_size", -128),
        ("train", "eval_batch_size", 0),
        ("train", "lr", 0.0),
        ("train", "lr", -1e-3),
        ("train", "lr", math.nan),
    ],
)
def test_sizes_must_be_positive(section: str, key: str, value: Any):
    with pytest.raises(ConfigError, match=rf"{key} must be > 0"):
        RunConfig.from_dict(with_value(section, key, value))


def test_unknown_model_name():
    with pytest.raises(ConfigError, match="unknown model 'transformer'") as info:
        RunConfig.from_dict({"model": {"name": "transformer"}})
    assert "mlp" in str(info.value)  # and the known ones are listed


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [("train", "device", "tpu"), ("train", "precision", "fp8")],
)
def test_choices(section: str, key: str, value: str):
    with pytest.raises(ConfigError, match=rf"{key} must be one of .*; got '{value}'"):
        RunConfig.from_dict(with_value(section, key, value))


@pytest.mark.parametrize("value", ["cifar10", "folder:", "zip:/data", ""])
def test_unknown_dataset(value: str):
    with pytest.raises(
        ConfigError, match=r"unknown dataset .*; use fashion-mnist, mnist, sprites, folder:PATH"
    ):
        RunConfig.from_dict(with_value("data", "dataset", value))


@pytest.mark.parametrize("value", ["folder:/some/images", "npy:~/x.npy", "fashion-mnist"])
def test_own_data_sources_are_accepted(value: str):
    assert RunConfig.from_dict(with_value("data", "dataset", value)).data.dataset == value


# --------------------------------------------------------------------------- overrides


def test_apply_overrides_converts_and_leaves_the_original():
    """Command-line strings become typed values in a new config; the old one is unchanged."""
    base = RunConfig()
    new = apply_overrides(
        base,
        {
            ("train", "epochs"): "3",
            ("train", "lr"): "0.01",
            ("model", "name"): "conv",
            ("data", "download"): "no",
            ("data", "data_dir"): "/tmp/mnist",
        },
    )
    assert (new.train.epochs, new.train.lr, new.model.name) == (3, 0.01, "conv")
    assert new.data.download is False and new.data.data_dir == "/tmp/mnist"
    assert new.train.batch_size == 128  # untouched fields keep their values
    assert base == RunConfig()


def test_apply_overrides_can_clear_an_optional_field():
    base = apply_overrides(RunConfig(), {("data", "data_dir"): "/x"})
    assert apply_overrides(base, {("data", "data_dir"): "none"}).data.data_dir is None


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({("train", "epochs"): "0"}, "epochs must be > 0"),
        ({("train", "epochs"): "ten"}, r"train\.epochs must be int"),
        ({("model", "name"): "nope"}, "unknown model 'nope'"),
        ({("train", "epoch"): "3"}, r"unknown key\(s\) in train: epoch"),
    ],
)
def test_apply_overrides_validates(overrides: dict, words: str):
    with pytest.raises(ConfigError, match=words):
        apply_overrides(RunConfig(), overrides)


def test_apply_overrides_unknown_section():
    """An unknown section is a ConfigError like an unknown key, not a KeyError."""
    with pytest.raises(ConfigError, match="optimiser"):
        apply_overrides(RunConfig(), {("optimiser", "lr"): "1"})


# --------------------------------------------------------------------------- model families


def test_each_family_saves_only_its_own_fields():
    common = {"name", "likelihood", "sigma", "latent_dim", "hidden_dim"}
    prior = common | {"condition", "labels", "prior", "pseudo_inputs"}
    one_group = prior | {"flow", "flow_steps"}
    vq = {"name", "likelihood", "sigma", "channels", "codebook_size", "code_dim", "commitment"}
    vq |= {"ema_decay", "dead_code_threshold"}
    expected = {
        "mlp": one_group,
        "conv": one_group | {"channels"},
        "resconv": one_group | {"channels"},
        "hvae": prior | {"groups"},
        "iwae-1l": one_group,
        "iwae-2l": common,
        "vq": vq,
        "vq-prior": vq | {"codes_from", "prior_width", "prior_layers", "prior_heads"},
    }
    assert set(MODEL) == set(expected)
    for name, keys in expected.items():
        values = {"codes_from": "runs/vq"} if name == "vq-prior" else {}
        config = RunConfig(model=model_config(name, **values))
        config.objective.objective = config.model.objectives[0]
        assert set(config.to_dict()["model"]) == keys, name
        assert RunConfig.from_dict(config.to_dict()) == config


def test_from_dict_picks_the_family_class_by_name():
    config = RunConfig.from_dict({"model": {"name": "hvae", "groups": 4, "latent_dim": 16}})
    assert type(config.model) is HVAEConfig
    assert (config.model.groups, config.model.latent_dim) == (4, 16)
    assert type(RunConfig.from_dict({"model": {"latent_dim": 8}}).model) is MLPConfig


@pytest.mark.parametrize(
    ("model", "words"),
    [
        ({"name": "mlp", "groups": 3}, r"model\.groups does not apply to model mlp \(only to hvae"),
        ({"channels": 8}, r"model\.channels does not apply to model mlp \(only to conv, resconv"),
        ({"name": "hvae", "channels": 8}, "model.channels does not apply to model hvae"),
        ({"name": "conv", "groups": 2, "channels": 8}, "model.groups does not apply to model conv"),
        (
            {"name": "iwae-1l", "groups": 2, "channels": 8},
            r"model\.channels, model\.groups do not apply to model iwae-1l",
        ),
    ],
)
def test_another_familys_field_is_refused_naming_the_family(model: dict, words: str):
    with pytest.raises(ConfigError, match=words):
        RunConfig.from_dict({"model": model})


def test_a_key_no_family_has_is_an_unknown_key():
    with pytest.raises(ConfigError, match=r"unknown key\(s\) in model: depth; known: ") as info:
        RunConfig.from_dict({"model": {"name": "hvae", "depth": 3}})
    assert "groups" in str(info.value)


def test_override_of_a_field_the_family_lacks_names_the_flag():
    with pytest.raises(
        ConfigError, match=r"^--groups does not apply to model mlp \(only to hvae\)$"
    ):
        apply_overrides(RunConfig(), {("model", "groups"): 3})
    with pytest.raises(ConfigError, match="--channels does not apply to model hvae"):
        apply_overrides(RunConfig(), {("model", "name"): "hvae", ("model", "channels"): 8})
    both = {("model", "name"): "hvae", ("model", "groups"): 2}
    assert apply_overrides(RunConfig(), both).model == HVAEConfig(groups=2)


def test_switching_family_keeps_the_shared_fields_and_drops_the_rest():
    """--model mlp on the hvae preset: the preset's sizes stay, its groups go."""
    config = apply_overrides(presets.load("mnist-hvae"), {("model", "name"): "mlp"})
    assert config.model == MLPConfig(latent_dim=16, hidden_dim=256)
    conv = apply_overrides(config, {("model", "name"): "conv", ("model", "channels"): 4})
    assert conv.model == ConvConfig(latent_dim=16, hidden_dim=256, channels=4)


def test_model_config_is_strict_and_validated():
    assert model_config("conv", channels=4) == ConvConfig(channels=4)
    with pytest.raises(ConfigError, match=r"model\.groups does not apply to model conv"):
        model_config("conv", groups=2)
    with pytest.raises(ConfigError, match="groups must be > 0"):
        model_config("hvae", groups=0)
    with pytest.raises(ConfigError, match="unknown model 'vit'; known models: conv, hvae"):
        model_config("vit")


def test_the_base_class_is_not_a_model_and_a_renamed_family_is_refused():
    with pytest.raises(TypeError, match="families' base"):
        ModelConfig()
    config = RunConfig()
    config.model.name = "conv"  # an MLPConfig has no channels: not a conv config
    with pytest.raises(ConfigError, match="does not match MLPConfig"):
        config.validate()


# --------------------------------------------------------------------------- layout 1


def v1_config(model: dict[str, Any]) -> dict[str, Any]:
    """A config as vaekit wrote it before model families: every family's field, flat."""
    flat = {"name": "mlp", "latent_dim": 2, "hidden_dim": 400, "channels": 32}
    flat |= {"likelihood": "bernoulli", "sigma": 0.1, "groups": 3}
    raw = RunConfig().to_dict()
    raw["model"] = flat | model
    return raw


def test_an_old_config_json_still_loads_with_its_familys_fields(tmp_path: Path):
    """A run folder's config.json of layout 1, given to --config, keeps working."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps(v1_config({"name": "hvae", "groups": 4, "channels": 32})))
    assert RunConfig.load(path).model == HVAEConfig(groups=4)
    path.write_text(json.dumps(v1_config({"name": "conv", "channels": 8, "groups": 3})))
    assert RunConfig.load(path).model == ConvConfig(channels=8)


def test_only_a_full_flat_model_section_is_read_as_layout_1(tmp_path: Path):
    path = tmp_path / "config.json"
    raw = v1_config({})
    del raw["model"]["hidden_dim"]  # not what layout 1 wrote: validated as written
    path.write_text(json.dumps(raw))
    with pytest.raises(ConfigError, match="do not apply to model mlp"):
        RunConfig.load(path)
