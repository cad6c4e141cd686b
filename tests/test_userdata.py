"""Own data: image folders and .npy arrays, with clear errors that name the file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vaekit.data.userdata import load_user_data, read_folder, read_npy, split_rows
from vaekit.errors import DataError


def _save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


@pytest.fixture
def labelled_folder(tmp_path):
    """Two classes of 16x16 grey PNGs: 'dark' (value 10 + i) and 'light' (200 + i)."""
    for i in range(5):
        _save(tmp_path / "imgs" / "dark" / f"{i}.png", np.full((16, 16), 10 + i, np.uint8))
        _save(tmp_path / "imgs" / "light" / f"{i}.png", np.full((16, 16), 200 + i, np.uint8))
    return tmp_path / "imgs"


def test_folder_labels_come_from_sub_folders(labelled_folder):
    images, labels = read_folder(labelled_folder)
    assert images.shape == (10, 16, 16, 1) and images.dtype == np.uint8
    assert sorted(labels.tolist()) == [0] * 5 + [1] * 5
    assert set(images[labels == 0, 0, 0, 0]) == {10, 11, 12, 13, 14}
    assert set(images[labels == 1, 0, 0, 0]) == {200, 201, 202, 203, 204}


def test_folder_resize_and_colour(tmp_path):
    _save(tmp_path / "a.png", np.zeros((20, 30), np.uint8))
    _save(tmp_path / "b.jpg", np.full((40, 10, 3), (255, 0, 0), np.uint8))
    images, labels = read_folder(tmp_path, image_size=32)
    assert images.shape == (2, 32, 32, 3)  # one colour file makes the set colour
    assert labels.tolist() == [0, 0]
    red = images[1].reshape(-1, 3).mean(0)
    assert red[0] > 200 and red[1] < 40 and red[2] < 40
    grey, _ = read_folder(tmp_path, image_size=8, image_mode="grey")
    assert grey.shape == (2, 8, 8, 1)


def test_crop_keeps_the_centred_square_and_squash_the_whole_image(tmp_path):
    """A 30x10 strip, black | white | black in thirds: its centred 10x10 square is the
    white third alone, so a crop to 5x5 is all white; squashing keeps the black thirds."""
    strip = np.zeros((10, 30), np.uint8)
    strip[:, 10:20] = 255
    _save(tmp_path / "strip.png", strip)
    cropped, _ = read_folder(tmp_path, image_size=5, resize="crop")
    squashed, _ = read_folder(tmp_path, image_size=6)
    assert (cropped == 255).all()
    columns = squashed[0, :, :, 0].mean(axis=0)
    assert columns[0] < 30 and columns[-1] < 30 and columns[2:4].min() > 200


def test_crop_box_is_centred_with_the_target_aspect():
    from vaekit.data.imagefiles import centre_box

    assert centre_box((30, 10), (5, 5)) == (10, 0, 20, 10)
    assert centre_box((10, 40), (8, 8)) == (0, 15, 10, 25)
    assert centre_box((64, 64), (32, 32)) == (0, 0, 64, 64)


def test_crop_needs_an_image_size_and_a_folder(tmp_path):
    from vaekit.config import DataConfig
    from vaekit.errors import ConfigError

    with pytest.raises(ConfigError, match="--resize crop needs --image-size"):
        DataConfig(dataset="folder:x", resize="crop").validate()
    np.save(tmp_path / "a.npy", np.zeros((4, 8, 8), np.uint8))
    with pytest.raises(DataError, match="--resize apply to image folders only"):
        read_npy(tmp_path / "a.npy", resize="crop")


def test_folder_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        read_folder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no PNG, JPEG"):
        read_folder(tmp_path / "empty")
    _save(tmp_path / "mixed" / "a.png", np.zeros((8, 8), np.uint8))
    _save(tmp_path / "mixed" / "b.png", np.zeros((9, 8), np.uint8))
    with pytest.raises(DataError, match=r"b\.png is 8x9 but .*a\.png is 8x8; pass --image-size"):
        read_folder(tmp_path / "mixed")
    bad = tmp_path / "broken"
    _save(bad / "a.png", np.zeros((8, 8), np.uint8))
    (bad / "c.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match=r"c\.png: cannot read the image"):
        read_folder(bad)


def test_npy_uint8_and_float(tmp_path):
    data = np.random.default_rng(0).integers(0, 256, (50, 12, 12), dtype=np.uint8)
    np.save(tmp_path / "u8.npy", data)
    images, labels = read_npy(tmp_path / "u8.npy")
    assert isinstance(images, np.memmap) and images.shape == (50, 12, 12, 1)
    assert np.array_equal(images[..., 0], data) and labels.shape == (50,)
    np.save(tmp_path / "f.npy", data.astype(np.float64)[..., None].repeat(3, -1) / 255)
    floats, _ = read_npy(tmp_path / "f.npy")
    assert floats.dtype == np.float32 and floats.shape == (50, 12, 12, 3)


@pytest.mark.parametrize(
    ("array", "fragment"),
    [
        (np.zeros((4, 8)), "expected shape"),
        (np.zeros((4, 8, 8, 2)), "expected shape"),
        (np.full((4, 8, 8), 1.5), r"row 0, pixel \(y=0, x=0, channel 0\) is 1.5; float pixels"),
        (np.full((4, 8, 8), np.nan), "is nan; float pixels must be finite and lie in"),
        (np.full((4, 8, 8), 300, np.int32), "is 300; int32 pixels must lie in 0..255"),
    ],
)
def test_npy_errors(tmp_path, array, fragment):
    np.save(tmp_path / "x.npy", array)
    with pytest.raises(DataError, match=fragment):
        read_npy(tmp_path / "x.npy")


def test_npy_missing_or_not_npy(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_npy(tmp_path / "none.npy")
    (tmp_path / "junk.npy").write_bytes(b"junk")
    with pytest.raises(DataError, match=r"not a readable \.npy"):
        read_npy(tmp_path / "junk.npy")


def test_splits_are_disjoint_fixed_and_cover_everything():
    train, test = split_rows(100, 0.1, "train", True), split_rows(100, 0.1, "test", True)
    assert len(test) == 10 and len(train) == 90
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(100))
    assert np.array_equal(test, split_rows(100, 0.1, "test", True))
    assert split_rows(100, 0.1, "test", False) == slice(90, 100)


def test_memory_mapped_split_stays_a_view(tmp_path):
    np.save(tmp_path / "a.npy", np.arange(20 * 4, dtype=np.uint8).reshape(20, 2, 2))
    images, _ = load_user_data(f"npy:{tmp_path / 'a.npy'}", "test", None, "auto", 0.1)
    assert isinstance(images, np.memmap) and images.shape == (2, 2, 2, 1)
    assert images[0, 0, 0, 0] == 72
    with pytest.raises(DataError, match="unknown data source"):
        load_user_data("zip:x", "train", None, "auto", 0.1)


def test_memory_mapped_batches_equal_in_memory_batches(tmp_path):
    """The same batching code on a memory-mapped array gives the in-memory batches."""
    import torch

    from vaekit.data import epoch_order, iterate_batches, load_split, to_unit

    data = np.random.default_rng(1).integers(0, 256, (300, 10, 10, 3), dtype=np.uint8)
    np.save(tmp_path / "d.npy", data)
    mapped = load_split(f"npy:{tmp_path / 'd.npy'}", "train", test_fraction=0.1)
    in_memory = torch.from_numpy(data[:270].copy()).permute(0, 3, 1, 2).contiguous()
    assert mapped.images.shape == in_memory.shape == (270, 3, 10, 10)
    order = epoch_order(270, seed=3, epoch=1)
    pairs = zip(
        iterate_batches(mapped.images, 64, order),
        iterate_batches(in_memory, 64, order),
        strict=True,
    )
    for a, b in pairs:
        assert torch.equal(to_unit(a), to_unit(b))


def _cli_train(*args):
    from vaekit.cli import main

    base = ["train", "--epochs", "1", "--batch-size", "16", "--no-plots", "--no-progress"]
    return main([*base, *args])


def _colour_folder(root: Path, n: int = 40) -> Path:
    rng = np.random.default_rng(0)
    for i in range(n):
        cls = "red" if i % 2 else "blue"
        pixels = rng.integers(0, 80, (24, 20, 3), dtype=np.uint8)
        pixels[..., 0 if cls == "red" else 2] += 150
        _save(root / "imgs" / cls / f"{i}.png", pixels)
    return root / "imgs"


def test_train_on_a_folder_of_colour_pngs(tmp_path, capsys):
    from vaekit import checkpoint

    _colour_folder(tmp_path)
    out = tmp_path / "run"
    code = _cli_train(
        "--data",
        f"folder:{tmp_path / 'imgs'}",
        "--image-size",
        "32",
        "--model",
        "conv",
        "--latent-dim",
        "4",
        "--out",
        str(out),
    )
    assert code == 0, capsys.readouterr().err
    assert checkpoint.load(out).image_shape == (3, 32, 32)
    samples = np.asarray(Image.open(out / "samples.png"))
    assert samples.shape == (2 * (8 * 34 + 2), 2 * (8 * 34 + 2), 3)


@pytest.mark.parametrize(
    ("model", "likelihood", "size"),
    [
        ("conv", "gaussian", 32),
        ("conv", "gaussian-learned", 32),
        ("resconv", "continuous-bernoulli", 64),
    ],
)
def test_colour_likelihood_is_chosen_in_the_config(tmp_path, capsys, model, likelihood, size):
    """Colour images with each continuous likelihood: the loss falls, the samples are RGB."""
    from vaekit import checkpoint

    folder = _colour_folder(tmp_path)
    out = tmp_path / "run"
    args = ["--data", f"folder:{folder}", "--image-size", str(size), "--model", model]
    args += ["--likelihood", likelihood, "--latent-dim", "4", "--channels", "8"]
    args += ["--epochs", "6", "--lr", "0.003", "--out", str(out)]
    assert _cli_train(*args) == 0, capsys.readouterr().err
    ckpt = checkpoint.load(out)
    assert ckpt.image_shape == (3, size, size) and ckpt.config.model.likelihood == likelihood
    losses = [json.loads(line)["train_loss"] for line in (out / "metrics.jsonl").open()]
    assert losses[-1] < losses[0] - 0.05 * abs(losses[0]), losses
    samples = np.asarray(Image.open(out / "samples.png"))
    assert samples.ndim == 3 and samples.shape[2] == 3


def test_train_on_an_npy_array(tmp_path, capsys):
    from vaekit import checkpoint

    data = np.random.default_rng(0).random((64, 28, 28)).astype(np.float32)
    np.save(tmp_path / "x.npy", data)
    out = tmp_path / "run"
    assert _cli_train("--data", f"npy:{tmp_path / 'x.npy'}", "--out", str(out)) == 0
    record = (out / "metrics.jsonl").read_text()
    assert '"train_loss"' in record and checkpoint.load(out).image_shape == (1, 28, 28)


def test_bad_folders_fail_in_one_line_naming_the_file(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert _cli_train("--data", f"folder:{tmp_path / 'empty'}") == 1
    assert "holds no PNG, JPEG" in capsys.readouterr().err
    _save(tmp_path / "mixed" / "a.png", np.zeros((8, 8), np.uint8))
    _save(tmp_path / "mixed" / "b.png", np.zeros((12, 8), np.uint8))
    assert _cli_train("--data", f"folder:{tmp_path / 'mixed'}") == 1
    err = capsys.readouterr().err
    assert "b.png is 8x12" in err and "--image-size" in err and len(err.strip().splitlines()) == 1
    assert _cli_train("--data", "zip:foo") == 2
    assert "unknown dataset 'zip:foo'" in capsys.readouterr().err


def test_webp_and_bmp_are_read_and_other_files_named(tmp_path, capsys):
    """Lossless WebP and BMP decode to the pixels written; a stray file is named, not lost."""
    pixels = np.arange(64, dtype=np.uint8).reshape(8, 8) * 3
    Image.fromarray(pixels).save(tmp_path / "a.webp", lossless=True)
    Image.fromarray(pixels).save(tmp_path / "b.bmp")
    (tmp_path / "notes.txt").write_text("not an image")
    images, _ = read_folder(tmp_path, image_mode="grey")  # WebP stores grey as RGB
    assert images.shape == (2, 8, 8, 1)
    assert (images[..., 0] == pixels).all()
    assert "skipped 1 file(s) that are not images: notes.txt" in capsys.readouterr().err
