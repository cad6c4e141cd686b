"""Every parser a user feeds, fuzzed: config files, command lines, .npy headers, image
files, checkpoint headers. Only vaekit's own errors ever come out (RELIABILITY.md,
"Fuzzed parsers"). A few hundred examples each, no deadline."""

from __future__ import annotations

import contextlib
import io
import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import vaekit
from vaekit import checkpoint
from vaekit.checkpoint import Checkpoint
from vaekit.cli import main
from vaekit.cli.parser import build_parser
from vaekit.config import RunConfig
from vaekit.data.userdata import read_folder, read_npy
from vaekit.errors import CheckpointError, ConfigError, DataError, VaekitError

FUZZ = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
SECTIONS = {name: sorted(section) for name, section in RunConfig().to_dict().items()}

# ------------------------------------------------------------------------- config files

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["mlp", "conv", "npy:", "folder:x", "mnist", "none", "", "1e999", "-1"])
)
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner)
)


@st.composite
def config_dicts(draw: st.DrawFn) -> object:
    """Mostly real section and key names with any values; sometimes anything at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(values)
    raw: dict = {}
    for section in draw(st.lists(st.sampled_from([*SECTIONS, "extra"]), max_size=4)):
        keys = SECTIONS.get(section, ["x"])
        raw[section] = draw(st.dictionaries(st.sampled_from([*keys, "bogus"]), values))
    return raw


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
        )
    return "''" if value is None else json.dumps(value)


def _toml(raw: object) -> str:
    if not isinstance(raw, dict):
        return f"value = {_toml_value(raw)}\n"
    lines = []
    for section, body in raw.items():
        lines.append(f"[{json.dumps(section)}]")
        items = body.items() if isinstance(body, dict) else [("value", body)]
        lines += [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in items]
    return "\n".join(lines) + "\n"


def _load_config(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    with contextlib.suppress(ConfigError):
        RunConfig.load(path)


@FUZZ
@given(raw=config_dicts(), toml=st.booleans())
def test_fuzz_config_files(tmp_path, raw, toml):
    """Generated JSON and TOML configs load, or fail with a ConfigError."""
    if toml:
        _load_config(tmp_path / "c.toml", _toml(raw))
    else:
        _load_config(tmp_path / "c.json", json.dumps(raw))


@FUZZ
@given(
    text=st.text(alphabet=st.sampled_from(list("[]{}=\"'.,:# \n\\tuefalsn0123-+e_ab")), max_size=80)
)
def test_fuzz_config_text(tmp_path, text):
    """Broken JSON and TOML syntax: a ConfigError that names the file."""
    _load_config(tmp_path / "c.json", text)
    _load_config(tmp_path / "c.toml", text)


def test_a_config_file_that_is_not_utf8_is_a_config_error(tmp_path):
    (tmp_path / "c.json").write_bytes(b'\xff\xfe{"model": {}}')
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        RunConfig.load(tmp_path / "c.json")


# ------------------------------------------------------------------------- command lines

# Never: --help (exits), --nproc (launches torchrun), bench (runs benchmarks),
# --pretrained (a real model: evaluation would look for data), paths of real runs.
SKIPPED_FLAGS = {"-h", "--help", "--nproc", "--pretrained", "--data-dir", "--out", "--config"}
COMMANDS = ["train", "sample", "reconstruct", "evaluate", "plot", "explore", "export"]


def _flags(command: str) -> list[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    flags = [s for a in sub._actions for s in a.option_strings]
    return [f for f in flags if f not in SKIPPED_FLAGS]


FLAGS = {command: _flags(command) for command in COMMANDS}
tokens = (
    st.text(alphabet=st.characters(codec="utf-8", exclude_characters="-"), max_size=8)
    | st.integers(-5, 10**6).map(str)
    | st.floats(allow_nan=True).map(str)
    | st.sampled_from(["mlp", "conv", "cpu", "cuda", "npy:", "folder:", "none", "true", "-1"])
)


@st.composite
def command_lines(draw: st.DrawFn) -> list[str]:
    command = draw(st.sampled_from([*COMMANDS, "models", "presets", "nope", "--debg"]))
    words = draw(st.lists(st.sampled_from(FLAGS.get(command) or ["--x"]) | tokens, max_size=6))
    return [command, *words]


@FUZZ
@given(argv=command_lines())
def test_fuzz_command_lines(tmp_path, monkeypatch, argv):
    """Generated command lines exit 0, 1 or 2 with at most one error line, and write
    nothing outside tmp: training always points at an empty --data-dir."""
    monkeypatch.chdir(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir(exist_ok=True)
    if argv[0] == "train":
        argv = [*argv, "--data-dir", str(empty), "--no-download", "--out", str(tmp_path / "r")]
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    assert code in (0, 1, 2), (argv, err.getvalue())
    lines = err.getvalue().strip().splitlines()
    assert len(lines) <= 1 and "Traceback" not in err.getvalue(), (argv, lines)
    assert not (tmp_path / "r" / "checkpoint.safetensors").exists()


# ------------------------------------------------------------------------- .npy headers


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


VALID_NPY = _npy_bytes(np.zeros((6, 4, 4), np.uint8))
dicts = st.fixed_dictionaries(
    {
        "descr": st.sampled_from(["|u1", "<f4", ">f8", "<i8", "|O", "<c16", "|b1", "V8", "x"])
        | st.text(max_size=6),
        "fortran_order": st.booleans() | st.integers(),
        "shape": st.lists(st.integers(-2, 2**40), max_size=5).map(tuple) | st.text(max_size=4),
    }
)


def _read_npy(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.npy"
    path.write_bytes(content)
    with contextlib.suppress(DataError):
        read_npy(path)


@FUZZ
@given(data=st.data())
def test_fuzz_npy_header_bit_flips_and_truncations(tmp_path, data):
    content = bytearray(VALID_NPY)
    for bit in data.draw(st.lists(st.integers(0, 128 * 8 - 1), max_size=4)):
        content[bit // 8] ^= 1 << (bit % 8)
    _read_npy(tmp_path, bytes(content[: data.draw(st.integers(0, len(content)))]))


@FUZZ
@given(header=dicts | st.text(max_size=60), payload=st.binary(max_size=256))
def test_fuzz_npy_headers(tmp_path, header, payload):
    """A well-framed .npy whose header dict says anything, over any payload."""
    text = (repr(header) if isinstance(header, dict) else header).encode("latin-1", "replace")
    padded = text + b" " * (-(len(text) + 11) % 64) + b"\n"
    _read_npy(tmp_path, b"\x93NUMPY\x01\x00" + struct.pack("<H", len(padded)) + padded + payload)


# ------------------------------------------------------------------------- image files


def _image(fmt: str, mode: str) -> bytes:
    pixels = np.random.default_rng(1).integers(0, 256, (12, 10, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).convert(mode).save(buffer, fmt)
    return buffer.getvalue()


IMAGES = {
    ".png": [_image("PNG", "RGB"), _image("PNG", "P"), _image("PNG", "LA")],
    ".jpg": [_image("JPEG", "RGB"), _image("JPEG", "L")],
    ".bmp": [_image("BMP", "RGB")],
    ".webp": [_image("WEBP", "RGB")],
}


@FUZZ
@given(data=st.data())
def test_fuzz_image_files(tmp_path, data):
    """Valid files with flipped bits, cut short, or random bytes: decoded or a DataError."""
    suffix = data.draw(st.sampled_from(sorted(IMAGES)))
    if data.draw(st.integers(0, 9)) == 0:
        content = bytearray(data.draw(st.binary(max_size=400)))
    else:
        content = bytearray(data.draw(st.sampled_from(IMAGES[suffix])))
        for bit in data.draw(st.lists(st.integers(0, len(content) * 8 - 1), max_size=6)):
            content[bit // 8] ^= 1 << (bit % 8)
        content = content[: data.draw(st.integers(0, len(content)))]
    folder = tmp_path / "images"
    folder.mkdir(exist_ok=True)
    (folder / f"x{suffix}").write_bytes(bytes(content))
    with contextlib.suppress(DataError):
        images, _ = read_folder(folder)
        assert images.dtype == np.uint8 and images.ndim == 4


# ------------------------------------------------------------------------- checkpoints


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> bytes:
    """The bytes of a real checkpoint: tiny model, Adam state, progress."""
    import torch

    from vaekit.training.state import build_state

    config = RunConfig()
    config.model.hidden_dim, config.train.device = 16, "cpu"
    state = build_state(config, (1, 8, 8))
    state.model(torch.rand(4, 1, 8, 8)).params.sum().backward()
    state.optimizer.step()
    ckpt = Checkpoint(
        config,
        (1, 8, 8),
        state.model.state_dict(),
        state.optimizer.state_dict(),
        progress={"epoch": 1, "batch": 0},
    )
    return checkpoint.save(ckpt, tmp_path_factory.mktemp("ckpt")).read_bytes()


def _load_checkpoint(tmp_path: Path, content: bytes) -> None:
    """checkpoint.load, then what a user's command does with it: build the model."""
    path = tmp_path / "x.safetensors"
    path.write_bytes(content)
    with contextlib.suppress(CheckpointError):
        ckpt = checkpoint.load(path)
        assert isinstance(ckpt.progress, dict) and isinstance(ckpt.progress.get("epoch", 0), int)
        vaekit.load(path, device="cpu")


@FUZZ
@given(data=st.data())
def test_fuzz_checkpoint_bytes(tmp_path, saved, data):
    """Bits flipped anywhere (header, tensors), and cut short."""
    content = bytearray(saved)
    for bit in data.draw(st.lists(st.integers(0, len(content) * 8 - 1), min_size=1, max_size=4)):
        content[bit // 8] ^= 1 << (bit % 8)
    _load_checkpoint(tmp_path, bytes(content[: data.draw(st.integers(0, len(content)))]))


@FUZZ
@given(data=st.data())
def test_fuzz_checkpoint_headers(tmp_path, saved, data):
    """The JSON header rewritten: metadata entries replaced by any JSON (the format tag
    kept, so the parser gets past it), tensor entries with any offsets, dtypes, shapes."""
    size = struct.unpack("<Q", saved[:8])[0]
    header = json.loads(saved[8 : 8 + size])
    meta = header["__metadata__"]
    for key in data.draw(st.lists(st.sampled_from(sorted(meta)), max_size=3)):
        if key not in ("format", "format_version") or data.draw(st.integers(0, 9)) == 0:
            value = data.draw(values)
            meta[key] = value if data.draw(st.booleans()) else json.dumps(value)
    names = sorted(k for k in header if k != "__metadata__")
    for name in data.draw(st.lists(st.sampled_from(names), max_size=2)):
        entry = header[name]
        field = data.draw(st.sampled_from(["dtype", "shape", "data_offsets"]))
        entry[field] = data.draw(values)
    if data.draw(st.integers(0, 9)) == 0:
        header = data.draw(values)
    text = json.dumps(header).encode()
    _load_checkpoint(tmp_path, struct.pack("<Q", len(text)) + text + saved[8 + size :])


def test_loaded_fuzz_errors_are_vaekit_errors():
    """The suppressions above catch vaekit's own types only: anything else fails a test."""
    assert all(issubclass(e, VaekitError) for e in (ConfigError, DataError, CheckpointError))
