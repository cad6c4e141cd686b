"""Named configurations: they load, build, are listed, and follow the papers' schedules."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from vaekit import presets
from vaekit.cli import main
from vaekit.config import RunConfig, family_class, family_fields, migrate
from vaekit.errors import ConfigError
from vaekit.models import build_model
from vaekit.training.step import kl_weight, learning_rate

EXPECTED = {"mnist-seed", "mnist-iwae-1l", "mnist-iwae-2l", "mnist-hvae", "fashion-conv"}
IMAGE_SHAPES = {"mnist": (1, 28, 28), "fashion-mnist": (1, 28, 28)}


def _linear(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def test_names_are_sorted_and_include_the_shipped_presets():
    names = presets.names()
    assert names == sorted(names)
    assert set(names) >= EXPECTED


@pytest.mark.parametrize("name", presets.names())
def test_every_preset_loads_validates_and_builds(name):
    config = presets.load(name)
    assert isinstance(config, RunConfig)
    config.validate()
    assert RunConfig.from_dict(config.to_dict()) == config  # round-trips through JSON
    assert presets.about(name).strip()
    shape = IMAGE_SHAPES[config.data.dataset]
    model = build_model(config.model, shape)
    x = torch.rand(2, *shape)
    with torch.no_grad():
        out = model(x)
    assert out.params.shape == (2, *model.output_shape)
    assert model.output_shape[1:] == shape[1:]


@pytest.mark.parametrize("name", presets.names())
def test_every_preset_is_written_in_its_familys_layout(name):
    """A preset's model section names only fields its family has (layout 2, no migration)."""
    raw = presets._raw(name)
    family = raw["model"]["name"]
    assert set(raw["model"]) <= set(family_fields(family))
    assert not migrate.is_v1_layout(raw)
    assert type(presets.load(name).model) is family_class(family)


def test_mnist_seed_is_the_default_config():
    assert presets.load("mnist-seed") == RunConfig()
    assert presets.load("mnist-seed").to_dict() == RunConfig().to_dict()


def test_iwae_presets_have_the_papers_sizes():
    """Burda et al. (2015), section 5: 784-200-200-50 (1 layer); 784-100-100-100-50-50-50."""
    one = build_model(presets.load("mnist-iwae-1l").model, (1, 28, 28))
    encoder = _linear(784, 200) + _linear(200, 200) + 2 * _linear(200, 50)
    decoder = _linear(50, 200) + _linear(200, 200) + _linear(200, 784)
    assert sum(p.numel() for p in one.parameters()) == encoder + decoder
    two = build_model(presets.load("mnist-iwae-2l").model, (1, 28, 28))
    q_z1 = _linear(784, 100) + _linear(100, 100) + 2 * _linear(100, 100)
    q_z2 = _linear(100, 50) + _linear(50, 50) + 2 * _linear(50, 50)
    p_z1 = _linear(50, 50) + _linear(50, 50) + 2 * _linear(50, 100)
    p_x = _linear(100, 100) + _linear(100, 100) + _linear(100, 784)
    assert sum(p.numel() for p in two.parameters()) == q_z1 + q_z2 + p_z1 + p_x
    config = presets.load("mnist-iwae-2l")
    assert (config.objective.objective, config.objective.k) == ("iwae", 50)
    assert config.train.epochs == 3280 == sum(3**i for i in range(8))


def test_presets_command_lists_every_preset_with_its_description(capsys):
    assert main(["presets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == presets.names()
    for line, name in zip(lines, presets.names(), strict=True):
        assert presets.about(name) in line


def test_unknown_preset_is_a_one_line_error_with_exit_2(capsys):
    assert main(["train", "--preset", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert "unknown preset 'nope'" in err and "mnist-seed" in err
    with pytest.raises(ConfigError, match="unknown preset"):
        presets.load("nope")


# ------------------------------------------------------------------- schedules


def _config(**objective) -> RunConfig:
    config = presets.load("mnist-iwae-1l")
    config.train.lr_schedule, config.train.epochs = "iwae", 3280  # the paper's schedule
    for key, value in objective.items():
        setattr(config.objective, key, value)
    return config


def _exponential(lr: float, lr_final: float, epochs: int, decay: int | None) -> RunConfig:
    config = RunConfig()
    config.train.lr, config.train.lr_final, config.train.epochs = lr, lr_final, epochs
    config.train.lr_schedule, config.train.lr_decay_epochs = "exponential", decay
    config.validate()
    return config


@pytest.mark.parametrize(
    "epoch, exponent",
    [
        *[(0, 0), (1, 1), (2, 1), (3, 1), (4, 2), (12, 2), (13, 3), (39, 3), (40, 4)],
        *[(120, 4), (121, 5), (1092, 6), (1093, 7), (3279, 7), (5000, 7)],
    ],
)
def test_iwae_learning_rate_schedule(epoch, exponent):
    """Stage i lasts 3^i epochs at lr * 10^(-i/7): epochs 0 | 1-3 | 4-12 | ... | 1093-3279."""
    config = _config()
    assert config.train.lr_schedule == "iwae"
    expected = config.train.lr * 10 ** (-exponent / 7)
    assert learning_rate(config, epoch) == pytest.approx(expected, rel=1e-12)


def test_iwae_schedule_ends_a_decade_below_and_constant_stays():
    config = _config()
    assert learning_rate(config, 3279) == pytest.approx(config.train.lr / 10, rel=1e-12)
    lrs = [learning_rate(config, e) for e in range(3280)]
    assert all(a >= b for a, b in itertools.pairwise(lrs))
    assert len(set(lrs)) == 8
    seed = presets.load("mnist-seed")
    assert {learning_rate(seed, e) for e in (0, 1, 4, 3279)} == {seed.train.lr}


def test_exponential_schedule_is_geometric_from_lr_to_lr_final_then_holds():
    config = _exponential(1e-3, 1e-5, epochs=100, decay=41)
    assert learning_rate(config, 0) == pytest.approx(1e-3, rel=1e-12)
    assert learning_rate(config, 20) == pytest.approx(1e-4, rel=1e-12)  # halfway: one decade
    assert learning_rate(config, 40) == pytest.approx(1e-5, rel=1e-12)
    assert [learning_rate(config, e) for e in (41, 99, 500)] == [learning_rate(config, 40)] * 3
    lrs = [learning_rate(config, e) for e in range(41)]
    ratios = [b / a for a, b in itertools.pairwise(lrs)]
    assert ratios == pytest.approx([10 ** (-2 / 40)] * 40, rel=1e-9)  # a constant factor


def test_exponential_horizon_defaults_to_epochs_and_survives_a_longer_resume():
    unset = _exponential(1e-3, 1e-4, epochs=11, decay=None)
    assert learning_rate(unset, 10) == pytest.approx(1e-4, rel=1e-12)
    fixed = [learning_rate(_exponential(1e-3, 1e-4, n, decay=11), 5) for n in (11, 20, 1000)]
    assert fixed == [pytest.approx(10**-3.5, rel=1e-12)] * 3
    with pytest.raises(ConfigError, match="lr_final must be > 0"):
        _exponential(1e-3, 0.0, epochs=10, decay=None)


def test_mnist_iwae_1l_decays_over_its_whole_run_and_holds_when_extended():
    config = presets.load("mnist-iwae-1l")
    train = config.train
    assert (train.lr_schedule, train.lr_decay_epochs) == ("exponential", train.epochs)
    assert learning_rate(config, train.epochs - 1) == pytest.approx(train.lr_final, rel=1e-12)
    assert learning_rate(config, 2 * train.epochs) == learning_rate(config, train.epochs - 1)


def test_kl_weight_warms_up_linearly_then_stays_at_beta():
    config = _config(beta=0.5, warmup_epochs=10.0)
    for progress in (0.0, 0.5, 2.5, 7.0, 9.99):
        assert kl_weight(config, progress) == pytest.approx(0.5 * progress / 10, rel=1e-12)
    for progress in (10.0, 10.5, 50.0, 3279.0):
        assert kl_weight(config, progress) == 0.5
    assert kl_weight(_config(beta=2.0, warmup_epochs=0.0), 0.0) == 2.0  # no warm-up: beta at once
    hvae = presets.load("mnist-hvae")
    assert hvae.objective.warmup_epochs == 10
    assert math.isclose(kl_weight(hvae, 5.0), 0.5 * hvae.objective.beta)
