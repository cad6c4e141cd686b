"""The user's own data, hostile or broken: one line naming the file (and row), exit 1,
and nothing of a run written (RELIABILITY.md, "The user's own data")."""

from __future__ import annotations

import builtins
import io
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vaekit import memory
from vaekit.cli import main
from vaekit.data.userdata import load_user_data, read_folder, read_npy
from vaekit.errors import DataError, ResourceError


def _png(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path)
    return path


def _npy(path: Path, array: np.ndarray) -> Path:
    np.save(path, array, allow_pickle=array.dtype == object)
    return path


def _image_bytes(fmt: str, size: int = 32) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt)
    return buffer.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def _png_header(width: int, height: int) -> bytes:
    """A small PNG claiming width x height pixels, with a few rows of data: a bomb's
    shape (it would decode to width*height pixels)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(bytes(4 * (width + 1)))
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", rows)


def _folder_with(tmp_path: Path, name: str, payload: bytes) -> Path:
    folder = tmp_path / "images"
    _png(folder / "good.png", np.zeros((32, 32), np.uint8))
    (folder / name).write_bytes(payload)
    return folder


# ------------------------------------------------------------------------- arrays

ROWS = np.zeros((6, 4, 4), np.float32)


def _with(value: object, dtype: object = np.float64, row: int = 3) -> np.ndarray:
    array = np.zeros((6, 4, 4), dtype)
    array[row, 1, 2] = value
    return array


ARRAYS = {
    "nan": (_with(np.nan), r"row 3, pixel \(y=1, x=2, channel 0\) is nan; float pixels must be"),
    "inf": (_with(np.inf), r"row 3, pixel \(y=1, x=2, channel 0\) is inf"),
    "-inf": (_with(-np.inf, np.float32, 5), r"row 5, .* is -inf"),
    "enormous-float": (_with(1e300), r"row 3, .* is 1e\+300; float pixels must be finite"),
    "float16-max": (_with(65504, np.float16), r"is 65504.0"),
    "int64-over-255": (_with(256, np.int64), r"row 3, .* is 256; int64 pixels must lie in 0..255"),
    "int64-enormous": (_with(2**62, np.int64), r"is 4611686018427387904; int64 pixels"),
    "int8-negative": (_with(-1, np.int8), r"is -1; int8 pixels must lie in 0..255"),
    "complex": (ROWS.astype(np.complex128), r"dtype complex128 \(complex numbers\); expected"),
    "bool": (ROWS.astype(bool), r"dtype bool \(booleans\)"),
    "text": (ROWS.astype(str), r"dtype <U32 \(text\)"),
    "record": (np.zeros((6, 4, 4), [("a", "u1")]), r"\(a structured record\)"),
    "object": (np.array([[[1]], [[None]]], dtype=object), r"holds Python objects"),
    "zero-rows": (np.zeros((0, 4, 4), np.uint8), r"holds no rows \(shape \(0, 4, 4, 1\)\)"),
    "empty-images": (np.zeros((6, 0, 4), np.uint8), r"images of 0x4 pixels are empty"),
    "two-channels": (np.zeros((6, 4, 4, 2), np.uint8), r"expected shape .* got \(6, 4, 4, 2\)"),
}


@pytest.mark.parametrize("case", list(ARRAYS))
def test_a_hostile_array_is_refused_naming_the_file_and_row(tmp_path, case):
    array, fragment = ARRAYS[case]
    path = _npy(tmp_path / "x.npy", array)
    with pytest.raises(DataError, match=fragment) as info:
        read_npy(path)
    assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)


def test_integers_within_0_255_are_taken_as_pixels(tmp_path):
    data = np.arange(6 * 4 * 4, dtype=np.int64).reshape(6, 4, 4) % 256
    images, _ = read_npy(_npy(tmp_path / "x.npy", data))
    assert images.dtype == np.uint8 and np.array_equal(images[..., 0], data)
    floats, _ = read_npy(_npy(tmp_path / "f.npy", (data / 255).astype(">f8")))  # big-endian too
    assert floats.dtype == np.float32 and np.allclose(floats[..., 0], data / 255)


def test_a_single_row_leaves_nothing_to_test_on(tmp_path):
    path = _npy(tmp_path / "one.npy", np.zeros((1, 4, 4), np.uint8))
    with pytest.raises(DataError, match=r"1 image\(s\) give 1 for training and 0 for the test"):
        load_user_data(f"npy:{path}", "train", None, "auto", 0.1)
    two = _npy(tmp_path / "two.npy", np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(DataError, match=r"give 0 for training and 2 for the test"):
        load_user_data(f"npy:{two}", "train", None, "auto", 0.9)
    assert load_user_data(f"npy:{two}", "train", None, "auto", 0.1)[0].shape[0] == 1


def test_an_npz_archive_is_not_an_array(tmp_path):
    np.savez(tmp_path / "x.npz", a=np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(DataError, match=r"x\.npz: an \.npz archive"):
        read_npy(tmp_path / "x.npz")


# ------------------------------------------------------------------------- image folders


@pytest.mark.parametrize(
    ("name", "payload", "fragment"),
    [
        ("cut.png", _image_bytes("PNG")[:600], r"cut\.png: cannot read the image \(image file"),
        ("cut.jpg", _image_bytes("JPEG")[:400], r"cut\.jpg: cannot read the image"),
        ("cut.webp", _image_bytes("WEBP")[:300], r"cut\.webp: cannot read the image"),
        ("cut.bmp", _image_bytes("BMP")[:900], r"cut\.bmp: cannot read the image"),
        ("text.png", b"hello, I am not a picture\n", r"text\.png: .*though its name says so"),
        ("jpeg.png", _image_bytes("JPEG")[:-200], r"jpeg\.png: cannot read the image"),
        ("empty.jpg", b"", r"empty\.jpg: cannot read the image"),
        ("bomb.png", _png_header(40_000, 40_000), r"bomb\.png: refused as a possible decomp"),
    ],
    ids=["png", "jpeg", "webp", "bmp", "not-an-image", "jpeg-named-png", "empty", "bomb"],
)
def test_a_broken_image_is_refused_naming_it(tmp_path, name, payload, fragment):
    with pytest.raises(DataError, match=fragment) as info:
        read_folder(_folder_with(tmp_path, name, payload))
    assert "\n" not in str(info.value)


def test_a_moderate_bomb_pillow_only_warns_about_is_refused_too(tmp_path, monkeypatch):
    """Above MAX_IMAGE_PIXELS Pillow only warns and decodes anyway; vaekit refuses."""
    folder = tmp_path / "images"
    _png(folder / "big.png", np.zeros((40, 40), np.uint8))  # 1600 pixels: a warning, not an error
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(DataError, match=r"big\.png: refused as a possible decompression bomb"):
        read_folder(folder)


def test_mixed_modes_are_converted_as_the_user_expects(tmp_path):
    folder = tmp_path / "images"
    grey = np.full((8, 8), 128, np.uint8)
    _png(folder / "a_grey.png", grey)
    _png(folder / "b_sixteen.png", np.full((8, 8), 65535, np.uint16))  # I;16: white, not clipped
    _png(folder / "c_half16.png", np.full((8, 8), 32896, np.uint16))  # 128 * 257
    _png(folder / "d_bits.png", np.ones((8, 8), bool))
    Image.fromarray(grey).convert("LA").save(folder / "e_alpha.png")
    images, _ = read_folder(folder)
    assert images.shape == (5, 8, 8, 1)
    assert images[:, 0, 0, 0].tolist() == [128, 255, 128, 255, 128]
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 0] = 200
    Image.fromarray(rgb).convert("P").save(folder / "f_palette.png")
    Image.fromarray(rgb).convert("RGBA").save(folder / "g_rgba.png")
    Image.fromarray(rgb).convert("CMYK").save(folder / "h_cmyk.jpg")
    images, _ = read_folder(folder)
    assert images.shape == (8, 8, 8, 3)  # one colour file makes the set colour
    assert images[1, 0, 0].tolist() == [255, 255, 255] and abs(int(images[7, 0, 0, 0]) - 200) < 8


def test_symbolic_links_that_loop_or_lead_nowhere_are_named(tmp_path):
    folder = tmp_path / "images"
    _png(folder / "sub" / "a.png", np.zeros((8, 8), np.uint8))
    (folder / "sub" / "up").symlink_to(folder)
    with pytest.raises(DataError, match=r"sub/up: symbolic link loop \(leads back to"):
        read_folder(folder)
    (folder / "sub" / "up").unlink()
    (folder / "self.png").symlink_to(folder / "self.png")
    with pytest.raises(DataError, match=r"self\.png: a symbolic link that loops"):
        read_folder(folder)
    (folder / "self.png").unlink()
    (folder / "gone.png").symlink_to(folder / "missing.png")
    with pytest.raises(DataError, match=r"gone\.png: a symbolic link that leads to .*missing"):
        read_folder(folder)
    (folder / "gone.png").unlink()
    elsewhere = _png(tmp_path / "elsewhere" / "b.png", np.zeros((8, 8), np.uint8)).parent
    (folder / "linked").symlink_to(elsewhere)  # a link to another folder is followed
    assert read_folder(folder)[0].shape == (2, 8, 8, 1)


def _refuse_reading(monkeypatch: pytest.MonkeyPatch, victim: Path) -> None:
    """open() of `victim` fails as chmod 000 makes it fail for a user who is not root."""
    real_open = builtins.open

    def guarded(file, *args, **kwargs):
        if os.fspath(file) == os.fspath(victim):
            raise PermissionError(13, "Permission denied", os.fspath(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded)


def test_an_unreadable_file_is_named(tmp_path, monkeypatch):
    folder = tmp_path / "images"
    _png(folder / "a.png", np.zeros((8, 8), np.uint8))
    locked = _png(folder / "b.png", np.zeros((8, 8), np.uint8))
    array = _npy(tmp_path / "x.npy", np.zeros((4, 4, 4), np.uint8))
    _refuse_reading(monkeypatch, locked)
    with pytest.raises(DataError, match=r"b\.png: cannot read the image \(permission denied\)"):
        read_folder(folder)
    _refuse_reading(monkeypatch, array)
    with pytest.raises(DataError, match=r"x\.npy: cannot read the file \(permission denied\)"):
        read_npy(array)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a chmod 000 file all the same")
def test_a_chmod_000_file_is_named(tmp_path):
    folder = tmp_path / "images"
    _png(folder / "a.png", np.zeros((8, 8), np.uint8)).chmod(0)
    with pytest.raises(DataError, match=r"a\.png: cannot read the image \(permission denied\)"):
        read_folder(folder)


# ------------------------------------------------------------------------- memory


def test_an_image_size_beyond_memory_is_refused_before_decoding(tmp_path, monkeypatch):
    folder = tmp_path / "images"
    for i in range(3):
        _png(folder / f"{i}.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(ResourceError, match=r"3 images of 400000x400000x1 \(--image-size 400000\)"):
        read_folder(folder, image_size=400_000)  # 447 GiB: more than any machine here
    monkeypatch.setattr(memory, "total_memory", lambda device=None: 1000)
    with pytest.raises(ResourceError) as info:
        read_folder(folder, image_size=32)  # 3 * 32 * 32 = 3072 bytes
    assert "needs 3.0 KiB of memory, and this machine has 1000 B" in str(info.value)


def _train(spec: str, run: Path, *extra: str) -> list[str]:
    argv = ["train", "--dataset", spec, "--out", str(run), "--epochs", "1", "--device", "cpu"]
    return [*argv, "--no-pictures", "--no-plots", "--no-progress", *extra]


def _npy_case(tmp_path: Path, case: str) -> str:
    return f"npy:{_npy(tmp_path / f'{case}.npy', ARRAYS[case][0])}"


def _image_case(tmp_path: Path, name: str, payload: bytes) -> str:
    return f"folder:{_folder_with(tmp_path, name, payload)}"


def _huge_sparse_array(tmp_path: Path) -> str:
    path = tmp_path / "huge.npy"  # 2 x 8000 x 8000: 128 MB on paper, sparse on disk
    np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(2, 8000, 8000)).flush()
    return f"npy:{path}"


CLI_CASES: dict[str, tuple[Callable[[Path], str], str]] = {
    "nan": (lambda t: _npy_case(t, "nan"), "row 3, pixel"),
    "object": (lambda t: _npy_case(t, "object"), "holds Python objects"),
    "int64": (lambda t: _npy_case(t, "int64-over-255"), "is 256"),
    "zero-rows": (lambda t: _npy_case(t, "zero-rows"), "holds no rows"),
    "truncated": (lambda t: _image_case(t, "cut.png", _image_bytes("PNG")[:600]), "cut.png"),
    "bomb": (lambda t: _image_case(t, "bomb.png", _png_header(40_000, 40_000)), "bomb.png"),
    "model-too-big": (_huge_sparse_array, "training mlp on 1x8000x8000 images"),
}


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_the_cli_says_one_line_exits_1_and_writes_no_run(tmp_path, capsys, case):
    build, fragment = CLI_CASES[case]
    spec = build(tmp_path)
    run = tmp_path / "runs" / "run"
    assert main(_train(spec, run)) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert fragment in err and spec.partition(":")[2] in err
    left = {p.name for p in run.iterdir()} if run.exists() else set()
    assert left <= {"config.json"}, left  # no checkpoint, no metrics, no lock


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        (["--latent-dim", str(10**12)], "TiB for the weights and Adam's state"),
        (["--latent-dim", str(10**23)], "mlp cannot be built for (1, 28, 28) images"),
        (["--hidden-dim", str(10**9), "--model", "conv"], "use a smaller"),
    ],
    ids=["huge", "absurd", "conv"],
)
def test_model_sizes_beyond_memory_are_refused_before_building(
    tmp_path, mnist_dir, capsys, flags, fragment
):
    run = tmp_path / "run"
    argv = _train("mnist", run, "--data-dir", str(mnist_dir), "--no-download", "--limit", "300")
    assert main([*argv, *flags]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and fragment in err, err
    assert not run.exists()


def test_a_batch_beyond_memory_is_refused_with_the_estimate(monkeypatch):
    """The batch's own share: 4096 examples of 3x256x256 floats in, out and their gradient."""
    from vaekit.config import RunConfig
    from vaekit.training.budget import check_training_fits

    config = RunConfig()
    config.model.hidden_dim, config.train.batch_size = 8, 4096
    monkeypatch.setattr(memory, "total_memory", lambda device=None: 2**30)
    with pytest.raises(ResourceError) as info:
        check_training_fits(config, (3, 256, 256), 10_000, 100, torch.device("cpu"))
    message = str(info.value)
    assert "batch 4096" in message and "9.0 GiB for a batch" in message
    assert "this machine has 1.0 GiB" in message
    check_training_fits(config, (3, 256, 256), 10, 10, torch.device("cpu"))  # 10 rows fit
