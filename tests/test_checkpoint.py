"""Checkpoints: exact round trips, atomic writes, and refusal of anything foreign.

A checkpoint may come from anywhere (a colleague, a download), so loading must
never execute code, and every bad file must be one clear CheckpointError.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import pickle
import shlex
import struct
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from vaekit import api, checkpoint
from vaekit.checkpoint import FILENAME, Checkpoint
from vaekit.config import ConvConfig, HVAEConfig, MLPConfig, RunConfig
from vaekit.errors import CheckpointError, ConfigError
from vaekit.models import build_model

IMAGE_SHAPE = (1, 28, 28)


def small_config() -> RunConfig:
    config = RunConfig()
    config.model.hidden_dim = 32
    config.model.latent_dim = 3
    config.train.lr = 1e-2
    return config


def train_one_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, seed: int) -> None:
    """One Adam step on a fixed random batch: enough to fill exp_avg, exp_avg_sq and step."""
    x = torch.rand(8, *IMAGE_SHAPE, generator=torch.Generator().manual_seed(seed))
    mu, logvar = model.encode(x)
    loss = (model.decode(mu) - x).pow(2).mean() + logvar.exp().mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def make_trained(config: RunConfig) -> tuple[torch.nn.Module, torch.optim.Adam]:
    torch.manual_seed(0)
    model = build_model(dataclasses.replace(config.model), IMAGE_SHAPE)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.train.lr)
    train_one_step(model, optimizer, seed=1)
    return model, optimizer


@pytest.fixture
def trained() -> tuple[RunConfig, torch.nn.Module, torch.optim.Adam, Checkpoint]:
    config = small_config()
    model, optimizer = make_trained(config)
    ckpt = Checkpoint(
        config=config,
        image_shape=IMAGE_SHAPE,
        model_state=model.state_dict(),
        optimizer_state=optimizer.state_dict(),
        rng_state={"cpu": torch.get_rng_state()},
        progress={"epoch": 1, "step": 1},
    )
    return config, model, optimizer, ckpt


@pytest.fixture
def saved(tmp_path: Path, trained) -> Path:
    return checkpoint.save(trained[3], tmp_path / FILENAME)


def assert_same_tensor(a: torch.Tensor, b: torch.Tensor) -> None:
    """Same dtype, shape and bits (NaN-safe, -0.0 distinct from 0.0)."""
    assert a.dtype == b.dtype and a.shape == b.shape
    assert a.reshape(-1).view(torch.uint8).equal(b.reshape(-1).view(torch.uint8))


def rewrite_metadata(path: Path, **changes: str) -> None:
    """Re-save a checkpoint's tensors with some header entries replaced."""
    with safe_open(str(path), "pt") as handle:
        metadata = dict(handle.metadata())
    save_file(load_file(str(path)), str(path), metadata=metadata | changes)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != FILENAME)


# --------------------------------------------------------------------------- round trip


def test_round_trip_is_bit_identical(tmp_path: Path, trained):
    config, model, optimizer, ckpt = trained
    path = checkpoint.save(ckpt, tmp_path)  # a run folder is accepted
    assert path == tmp_path / FILENAME
    loaded = checkpoint.load(tmp_path)

    assert loaded.config == config
    assert loaded.image_shape == IMAGE_SHAPE
    assert loaded.progress == {"epoch": 1, "step": 1}
    assert sorted(loaded.model_state) == sorted(model.state_dict())
    for name, tensor in model.state_dict().items():
        assert_same_tensor(loaded.model_state[name], tensor)
    assert_same_tensor(loaded.rng_state["cpu"], ckpt.rng_state["cpu"])

    original = optimizer.state_dict()
    assert loaded.optimizer_state is not None
    assert sorted(loaded.optimizer_state["state"]) == sorted(original["state"]) == list(range(10))
    for index, state in original["state"].items():
        assert sorted(loaded.optimizer_state["state"][index]) == ["exp_avg", "exp_avg_sq", "step"]
        for key, value in state.items():
            assert_same_tensor(loaded.optimizer_state["state"][index][key], value)
    assert loaded.optimizer_state["state"][0]["step"].item() == 1
    assert (
        json.loads(json.dumps(original["param_groups"])) == loaded.optimizer_state["param_groups"]
    )


def test_restored_training_continues_exactly(tmp_path: Path, trained):
    """A model and Adam rebuilt from the file take the very same next step as the originals."""
    _, model, optimizer, ckpt = trained
    loaded = checkpoint.load(checkpoint.save(ckpt, tmp_path))

    model2 = build_model(dataclasses.replace(loaded.config.model), loaded.image_shape)
    model2.load_state_dict(loaded.model_state)
    optimizer2 = torch.optim.Adam(model2.parameters(), lr=loaded.config.train.lr)
    optimizer2.load_state_dict(loaded.optimizer_state)

    train_one_step(model, optimizer, seed=2)
    train_one_step(model2, optimizer2, seed=2)
    moved = 0.0
    for name, tensor in model.state_dict().items():
        assert_same_tensor(model2.state_dict()[name], tensor)
        moved += (tensor - loaded.model_state[name]).abs().sum().item()
    assert moved > 0  # the second step did change the weights


def test_checkpoint_without_optimizer(tmp_path: Path, trained):
    config, model, _, _ = trained
    ckpt = Checkpoint(config, IMAGE_SHAPE, model.state_dict())
    loaded = checkpoint.load(checkpoint.save(ckpt, tmp_path / "weights.safetensors"))
    assert loaded.optimizer_state is None and loaded.rng_state == {} and loaded.progress == {}
    assert_same_tensor(loaded.model_state["fc1.weight"], model.fc1.weight.detach())


def test_atomic_write_leaves_no_temp_files(tmp_path: Path, trained):
    """Writing twice over the same path leaves exactly the checkpoint, holding the newer data."""
    _, _, _, ckpt = trained
    checkpoint.save(ckpt, tmp_path)
    ckpt.progress = {"epoch": 2}
    checkpoint.save(ckpt, tmp_path)
    assert leftovers(tmp_path) == []
    assert checkpoint.load(tmp_path).progress == {"epoch": 2}


# --------------------------------------------------------------------------- failed writes


def test_full_disk_keeps_the_previous_checkpoint(tmp_path: Path, trained, monkeypatch):
    _, _, _, ckpt = trained
    path = checkpoint.save(ckpt, tmp_path)
    before = path.read_bytes()

    def replace(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    ckpt.progress = {"epoch": 99}
    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(CheckpointError, match="the disk is full") as info:
        checkpoint.save(ckpt, tmp_path)
    assert "previous checkpoint is kept" in str(info.value)
    monkeypatch.undo()

    assert path.read_bytes() == before
    assert checkpoint.load(path).progress == {"epoch": 1, "step": 1}
    assert leftovers(tmp_path) == []


def test_unwritable_destination(tmp_path: Path, trained):
    with pytest.raises(CheckpointError, match="cannot write checkpoint") as info:
        checkpoint.save(trained[3], tmp_path / "no-such-folder" / FILENAME)
    assert "No such file or directory" in str(info.value)


# --------------------------------------------------------------------------- refusing bad files


class Exploit:
    """Unpickling this runs a shell command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


def test_the_exploit_is_live(tmp_path: Path):
    """Guard for the tests below: unpickling the payload really does create its marker."""
    marker = tmp_path / "proof"
    pickle.loads(pickle.dumps(Exploit(marker)))
    assert marker.exists()


@pytest.mark.parametrize("writer", ["torch.save", "pickle"])
@pytest.mark.parametrize("name", [FILENAME, "model.pt"])
def test_pickles_are_refused_unopened(tmp_path: Path, writer: str, name: str):
    marker = tmp_path / "pwned"
    path = tmp_path / name
    payload = {"model": Exploit(marker), "state_dict": {"w": torch.zeros(2)}}
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    with pytest.raises(CheckpointError, match="not a vaekit checkpoint") as info:
        checkpoint.load(path)
    assert str(path) in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "only 0 bytes"),
        (b"\x01\x02\x03", "only 3 bytes"),
        (bytes(range(256)) * 4, "not a safetensors file"),
        (struct.pack("<Q", 4) + b"\xff\xfe{}", "not a safetensors file"),  # header not UTF-8
        (struct.pack("<Q", 2) + b"[]", "no vaekit format tag"),  # JSON, but not a mapping
    ],
    ids=["empty", "tiny", "random", "binary-header", "list-header"],
)
def test_not_a_checkpoint(tmp_path: Path, content: bytes, words: str):
    path = tmp_path / "junk.safetensors"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=words) as info:
        checkpoint.load(path)
    assert str(path) in str(info.value)


def test_random_bytes(tmp_path: Path):
    path = tmp_path / FILENAME
    path.write_bytes(
        torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(3))
        .to(torch.uint8)
        .numpy()
        .tobytes()
    )
    with pytest.raises(CheckpointError, match="not a vaekit checkpoint"):
        checkpoint.load(tmp_path)


@pytest.mark.parametrize("metadata", [{"__metadata__": []}, {"__metadata__": None}])
def test_header_with_malformed_metadata(tmp_path: Path, metadata: dict):
    """A hand-made header whose __metadata__ is not a mapping is foreign, not a crash."""
    header = json.dumps(metadata).encode()
    path = tmp_path / FILENAME
    path.write_bytes(struct.pack("<Q", len(header)) + header)
    with pytest.raises(CheckpointError, match="not a vaekit checkpoint"):
        checkpoint.load(path)


def test_plain_safetensors_file(tmp_path: Path):
    """Someone else's safetensors weights: valid file, but not ours."""
    path = tmp_path / "model.safetensors"
    save_file({"fc1.weight": torch.ones(2, 3)}, str(path))
    with pytest.raises(CheckpointError, match="no vaekit format tag"):
        checkpoint.load(path)
    save_file({"w": torch.ones(1)}, str(path), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="no vaekit format tag"):
        checkpoint.load(path)


def test_future_format_version(saved: Path):
    rewrite_metadata(saved, format_version="999")
    with pytest.raises(CheckpointError) as info:
        checkpoint.load(saved)
    assert "format version 999" in str(info.value)
    assert f"reads version {checkpoint.FORMAT_VERSION}" in str(info.value)


def test_invalid_config_in_header(saved: Path):
    raw = json.loads(safe_open(str(saved), "pt").metadata()["config"])
    raw["train"]["epochs"] = 0
    rewrite_metadata(saved, config=json.dumps(raw))
    with pytest.raises(CheckpointError, match="invalid config: epochs must be > 0"):
        checkpoint.load(saved)


def test_damaged_header_entry(saved: Path):
    rewrite_metadata(saved, progress="{epoch: 1")
    with pytest.raises(CheckpointError, match="damaged header"):
        checkpoint.load(saved)


@pytest.mark.parametrize("image_shape", ["7", "null", '"abc"'])
def test_image_shape_not_a_list(saved: Path, image_shape: str):
    """The header's image_shape must be a list of sizes; anything else is a damaged header."""
    rewrite_metadata(saved, image_shape=image_shape)
    with pytest.raises(CheckpointError, match=str(saved)):
        checkpoint.load(saved)


def test_optimizer_tensor_with_a_bad_index(saved: Path):
    """Tensor names like optim/<index>/<key> come from the file; a non-number index is damage."""
    tensors = load_file(str(saved))
    tensors["optim/x/exp_avg"] = tensors.pop("optim/0/exp_avg")
    with safe_open(str(saved), "pt") as handle:
        metadata = handle.metadata()
    save_file(tensors, str(saved), metadata=metadata)
    with pytest.raises(CheckpointError, match=str(saved)):
        checkpoint.load(saved)


def test_unexpected_tensor(saved: Path):
    tensors = load_file(str(saved))
    with safe_open(str(saved), "pt") as handle:
        metadata = handle.metadata()
    save_file(tensors | {"extra/thing": torch.zeros(1)}, str(saved), metadata=metadata)
    with pytest.raises(CheckpointError, match="unexpected tensor 'extra/thing'"):
        checkpoint.load(saved)


def test_truncated_checkpoint(saved: Path):
    """Cut in the header or in the tensor data: either way a CheckpointError naming the file."""
    content = saved.read_bytes()
    header_end = 8 + struct.unpack("<Q", content[:8])[0]
    cuts = {
        4: "only 4 bytes",
        header_end // 2: "not a safetensors file",
        header_end + 10: "is corrupt",
        len(content) - 1: "is corrupt",
    }
    for length, words in cuts.items():
        saved.write_bytes(content[:length])
        with pytest.raises(CheckpointError, match=words) as info:
            checkpoint.load(saved)
        assert str(saved) in str(info.value)


def test_missing_path(tmp_path: Path):
    with pytest.raises(CheckpointError, match="no checkpoint at") as info:
        checkpoint.load(tmp_path / "runs" / "never-trained")
    assert "never-trained" in str(info.value)
    with pytest.raises(CheckpointError, match=f"no checkpoint at {tmp_path / FILENAME}"):
        checkpoint.load(tmp_path)  # an empty run folder


# --------------------------------------------------------------------------- format version 1


# A run's config as vaekit wrote it in format version 1: one flat model section holding
# every family's fields (this is the header of the shipped mnist-seed file).
V1_CONFIG = {
    "data": {
        "binarize": "none",
        "data_dir": None,
        "dataset": "mnist",
        "download": True,
        "image_mode": "auto",
        "image_size": None,
        "limit": None,
        "test_fraction": 0.1,
    },
    "model": {
        "channels": 32,
        "groups": 3,
        "hidden_dim": 400,
        "latent_dim": 2,
        "likelihood": "bernoulli",
        "name": "mlp",
        "sigma": 0.1,
    },
    "objective": {"beta": 1.0, "free_bits": 0.0, "k": 1, "objective": "elbo", "warmup_epochs": 0.0},
    "train": {
        "batch_size": 128,
        "device": "auto",
        "epochs": 10,
        "eval_batch_size": 1000,
        "lr": 0.001,
        "lr_schedule": "constant",
        "max_bad_steps": 20,
        "max_grad_norm": None,
        "pictures": True,
        "plots": True,
        "precision": "fp32",
        "seed": 0,
        "skip_grad_norm": None,
    },
}


def write_v1(path: Path, model_section: dict, state: dict[str, torch.Tensor]) -> Path:
    """A format-version-1 checkpoint written by hand: weights, no optimiser, v1 header."""
    config = json.loads(json.dumps(V1_CONFIG))
    config["model"] |= model_section
    metadata = {
        "format": "vaekit-checkpoint",
        "format_version": "1",
        "config": json.dumps(config, indent=2, sort_keys=True) + "\n",
        "image_shape": "[1, 28, 28]",
        "progress": '{"epoch": 3}',
        "optimizer_groups": "null",
    }
    tensors = {f"model/{key}": value.contiguous() for key, value in state.items()}
    save_file(tensors, str(path), metadata=metadata)
    return path


@pytest.mark.parametrize(
    ("flat", "expected"),
    [
        ({"latent_dim": 3, "hidden_dim": 32}, MLPConfig(latent_dim=3, hidden_dim=32)),
        (
            {"name": "conv", "latent_dim": 3, "hidden_dim": 32, "channels": 4},
            ConvConfig(latent_dim=3, hidden_dim=32, channels=4),
        ),
        (
            {"name": "hvae", "latent_dim": 3, "hidden_dim": 16, "groups": 2, "sigma": 0.2},
            HVAEConfig(latent_dim=3, hidden_dim=16, groups=2, sigma=0.2),
        ),
    ],
    ids=["mlp", "conv", "hvae"],
)
def test_a_version_1_checkpoint_is_migrated_on_load(tmp_path: Path, flat, expected):
    """The flat model section keeps the family's fields, drops the others; the weights load
    into the model they came from and decode the same."""
    torch.manual_seed(0)
    original = build_model(expected, IMAGE_SHAPE).eval()
    path = write_v1(tmp_path / "old.safetensors", flat, original.state_dict())
    loaded = checkpoint.load(path)
    assert loaded.config.model == expected and type(loaded.config.model) is type(expected)
    assert loaded.config.train == RunConfig().train and loaded.progress == {"epoch": 3}
    model = api.load(path, device="cpu")
    z = torch.randn(4, expected.latent_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(model.decode(z), original.decode(z))
    again = checkpoint.load(checkpoint.save(loaded, tmp_path / "new.safetensors"))
    assert again.config == loaded.config  # saved as version 2, read back the same


def test_a_version_1_checkpoint_of_an_unknown_model_is_an_invalid_config(tmp_path: Path):
    path = write_v1(tmp_path / "old.safetensors", {"name": "transformer"}, {"w": torch.ones(1)})
    with pytest.raises(CheckpointError, match="invalid config: unknown model 'transformer'"):
        checkpoint.load(path)


def test_saved_checkpoints_are_version_2_with_only_the_familys_fields(saved: Path):
    metadata = safe_open(str(saved), "pt").metadata()
    assert metadata["format_version"] == "2" == str(checkpoint.FORMAT_VERSION)
    model = json.loads(metadata["config"])["model"]
    assert set(model) == {"name", "latent_dim", "hidden_dim", "likelihood", "sigma"} | {
        *("prior", "pseudo_inputs", "flow", "flow_steps"),  # the one-group latent options
        *("condition", "labels"),  # the MLP's conditional VAE
    }


def test_the_shipped_pretrained_files_are_version_1_and_load_migrated(tmp_path: Path):
    """Real version-1 files: not re-saved, they load with their family's fields only."""
    from vaekit import pretrained

    expected = {
        "mnist-seed": MLPConfig(),
        "mnist-hvae": HVAEConfig(latent_dim=16, hidden_dim=256, groups=4),
    }
    for name, model in expected.items():
        path = pretrained.path(name)
        assert safe_open(str(path), "pt").metadata()["format_version"] == "1"
        raw = json.loads(safe_open(str(path), "pt").metadata()["config"])
        assert raw["model"]["channels"] == 32  # the flat section: a field hvae never read
        loaded = checkpoint.load(path)
        assert loaded.config.model == model
        resaved = checkpoint.save(loaded, tmp_path / f"{name}.safetensors")
        assert checkpoint.load(resaved).config == loaded.config


@pytest.mark.parametrize("version", ['["1"]', "1", "null"])
def test_a_format_version_that_is_not_a_string_is_foreign(tmp_path: Path, version: str):
    """format_version comes from the file: a list or number is reported, never a TypeError."""
    header = json.dumps({"__metadata__": {"format": "vaekit-checkpoint"}})
    header = header[:-2] + f', "format_version": {version}' + "}}"
    path = tmp_path / FILENAME
    path.write_bytes(struct.pack("<Q", len(header)) + header.encode())
    with pytest.raises(CheckpointError, match="format version"):
        checkpoint.load(path)


def test_an_old_run_folder_resumes_and_is_rewritten_as_version_2(small_config, tmp_path: Path):
    """A run folder from format version 1 (flat model section in its checkpoint and its
    config.json) continues training; its files are then written in today's layout."""
    small_config.data.limit, small_config.train.epochs = 256, 1
    run = api.train(small_config, tmp_path / "run", log=lambda _: None, progress=False)
    flat = V1_CONFIG["model"] | small_config.to_dict()["model"]  # every family's field
    old = small_config.to_dict() | {"model": flat}
    rewrite_metadata(run / FILENAME, format_version="1", config=json.dumps(old))
    (run / "config.json").write_text(json.dumps(old))
    with pytest.raises(ConfigError, match="--groups does not apply to model mlp"):
        api.resume(run, log=lambda _: None, progress=False, groups=4)
    api.resume(run, log=lambda _: None, progress=False, epochs=2)
    metadata = safe_open(str(run / FILENAME), "pt").metadata()
    assert metadata["format_version"] == "2"
    assert json.loads((run / "config.json").read_text())["model"] == small_config.to_dict()["model"]
    assert checkpoint.load(run).progress["epoch"] == 2


# --------------------------------------------------------------------------- fuzzing


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The bytes of one valid checkpoint with model and optimizer state."""
    config = small_config()
    model, optimizer = make_trained(config)
    ckpt = Checkpoint(config, IMAGE_SHAPE, model.state_dict(), optimizer.state_dict())
    return checkpoint.save(ckpt, tmp_path_factory.mktemp("reference")).read_bytes()


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_fuzz_header_bit_flips(tmp_path: Path, reference: bytes, data: st.DataObject):
    """Flipped bits in the size field or JSON header load or fail cleanly, nothing else."""
    header_end = 8 + struct.unpack("<Q", reference[:8])[0]
    bits = data.draw(st.lists(st.integers(0, header_end * 8 - 1), min_size=1, max_size=3))
    content = bytearray(reference)
    for bit in bits:
        content[bit // 8] ^= 1 << (bit % 8)
    path = tmp_path / "fuzz.safetensors"
    path.write_bytes(bytes(content))
    with contextlib.suppress(CheckpointError):
        checkpoint.load(path)


def test_a_path_with_a_nul_byte_is_a_one_line_checkpoint_error():
    """open() raises ValueError, not OSError, for such a path (found by the CLI fuzz test)."""
    with pytest.raises(CheckpointError, match="cannot hold a NUL byte"):
        checkpoint.load("run\x00dir")
