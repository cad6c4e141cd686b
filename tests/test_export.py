"""Export formats: ONNX graphs that compute what PyTorch computes, and a model folder
that every command reads like a run."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

import vaekit
from vaekit import checkpoint
from vaekit.cli import main
from vaekit.config import RunConfig, model_config
from vaekit.config.families import family_fields
from vaekit.export import export_model
from vaekit.models import build_model
from vaekit.runfolder import EVAL, MODEL_CARD, MODEL_WEIGHTS, SAMPLES, RunFolder

EVAL_FLAGS = ["-k", "10", "--limit", "50", "--no-fid", "--no-progress", "--device", "cpu"]


@pytest.fixture(scope="module")
def run(tmp_path_factory, mnist_dir):
    """One evaluated epoch of the seed model on 1,000 images."""
    config = RunConfig()
    config.data.data_dir, config.data.download, config.data.limit = str(mnist_dir), False, 1000
    config.train.epochs, config.train.device = 1, "cpu"
    config.train.pictures = config.train.plots = False
    folder = vaekit.train(config, tmp_path_factory.mktemp("export") / "run", progress=False)
    assert main(["evaluate", str(folder), *EVAL_FLAGS]) == 0
    return folder


def _untrained(tmp_path, name: str, likelihood: str):
    """A checkpoint of a freshly initialised model: enough to compare two runtimes."""
    config = RunConfig()
    sizes = {"latent_dim": 3, "hidden_dim": 64, "channels": 8}
    own = family_fields(name)  # each family takes only its own fields
    config.model = model_config(
        name, likelihood=likelihood, **{k: v for k, v in sizes.items() if k in own}
    )
    torch.manual_seed(0)
    model = build_model(config.model, (1, 28, 28))
    path = tmp_path / f"{name}.safetensors"
    return checkpoint.save(checkpoint.Checkpoint(config, (1, 28, 28), model.state_dict()), path)


def _onnx_matches_pytorch(source, out) -> None:
    import onnx
    import onnxruntime

    model = vaekit.load(source, device="cpu")
    encoder = onnxruntime.InferenceSession(str(out / "encoder.onnx"))
    decoder = onnxruntime.InferenceSession(str(out / "decoder.onnx"))
    meta = {p.key: p.value for p in onnx.load(out / "decoder.onnx").metadata_props}
    assert meta["model"] == model.run_config.model.name and meta["image_shape"] == "1x28x28"
    generator = torch.Generator().manual_seed(1)
    for batch in (1, 7):  # neither is the batch size of the export's example
        x = torch.rand((batch, 1, 28, 28), generator=generator)
        mu, logvar = encoder.run(["mu", "logvar"], {"x": x.numpy()})
        want_mu, want_logvar = vaekit.encode(model, x)
        np.testing.assert_allclose(mu, want_mu.numpy(), rtol=0, atol=1e-4)
        np.testing.assert_allclose(logvar, want_logvar.numpy(), rtol=0, atol=1e-4)
        z = torch.randn((batch, model.latent_dim), generator=generator)
        params, mean = decoder.run(["params", "mean"], {"z": z.numpy()})
        with torch.no_grad():
            np.testing.assert_allclose(params, model.decode(z).numpy(), rtol=0, atol=1e-4)
        np.testing.assert_allclose(mean, vaekit.decode(model, z).numpy(), rtol=0, atol=1e-4)
        assert mean.shape == (batch, 1, 28, 28)


def test_onnx_export_of_a_run_computes_what_pytorch_computes(run, tmp_path, capsys):
    out = tmp_path / "onnx"
    assert main(["export", str(run), "--format", "onnx", "-o", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"Wrote {out / 'encoder.onnx'}", f"Wrote {out / 'decoder.onnx'}"]
    _onnx_matches_pytorch(run, out)


@pytest.mark.parametrize(
    ("name", "likelihood"),
    [("conv", "bernoulli"), ("resconv", "gaussian-learned"), ("hvae", "continuous-bernoulli")],
)
def test_onnx_export_of_every_architecture(name, likelihood, tmp_path):
    source = _untrained(tmp_path, name, likelihood)
    written = export_model(source, tmp_path / "onnx", "onnx")
    assert [p.name for p in written] == ["encoder.onnx", "decoder.onnx"]
    _onnx_matches_pytorch(source, tmp_path / "onnx")


def test_onnx_refuses_safetensors_options_and_names_its_extra(run, tmp_path, monkeypatch, capsys):
    argv = ["export", str(run), "--format", "onnx", "-o", str(tmp_path / "o")]
    assert main([*argv, "--half"]) == 2
    assert "--eval and --half apply to --format safetensors and folder" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err
        == "vaekit: error: --format onnx needs the onnxscript package: pip install 'vaekit[onnx]'"
    )


@pytest.fixture(scope="module")
def model_folder(run, tmp_path_factory):
    out = tmp_path_factory.mktemp("folder") / "mnist-tiny"
    assert main(["export", str(run), "--format", "folder", "-o", str(out)]) == 0
    return out


def test_model_folder_holds_the_config_weights_and_card(run, model_folder):
    assert sorted(p.name for p in model_folder.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    trained = checkpoint.load(run)
    config = RunConfig.from_dict(json.loads((model_folder / "config.json").read_text()))
    assert config.model == trained.config.model and config.data.data_dir is None
    shared = checkpoint.load(model_folder / MODEL_WEIGHTS)
    assert shared.optimizer_state is None
    for key, value in trained.model_state.items():
        assert torch.equal(shared.model_state[key], value)
    result = RunFolder(run).read_eval()
    card = (model_folder / MODEL_CARD).read_text()
    assert card.startswith("---\nlibrary_name: vaekit\n") and "- ylecun/mnist" in card
    assert f"| {result.neg_elbo.nats:.2f} nats |" in card
    assert f"{result.iwae.nll_nats:.2f} ± {result.iwae.stderr_nats:.2f} nats" in card
    assert "`vaekit evaluate RUN_DIR -k 10 --limit 50 --no-fid`" in card
    assert "| parameters | 631,188 |" in card and "huggingface-cli upload" in card


def test_every_command_reads_a_model_folder(run, model_folder, mnist_dir, tmp_path):
    z = torch.randn(4, 2, generator=torch.Generator().manual_seed(0))
    loaded = vaekit.load(model_folder, device="cpu")
    assert torch.equal(vaekit.decode(loaded, z), vaekit.decode(vaekit.load(run, device="cpu"), z))
    assert main(["sample", str(model_folder), "-n", "4", "-o", str(tmp_path / "s.png")]) == 0
    data = ["--data-dir", str(mnist_dir)]
    assert main(["reconstruct", str(model_folder), *data, "-o", str(tmp_path / "r.png")]) == 0
    assert main(["evaluate", str(model_folder), *data, *EVAL_FLAGS]) == 0
    again = RunFolder(model_folder).read_eval()
    original = RunFolder(run).read_eval()
    assert (model_folder / EVAL).is_file()
    assert again.iwae.nll_nats == original.iwae.nll_nats  # the same weights, the same figures
    assert main(["plot", str(model_folder), *data, "--device", "cpu"]) == 0
    assert (model_folder / "latent_manifold.png").is_file()
    assert (model_folder / "report.html").is_file()
    page = ["explore", str(model_folder), "--points", "0", "--device", "cpu"]
    assert main(page) == 0 and (model_folder / "explorer" / "index.html").is_file()
    assert not (model_folder / SAMPLES).exists()  # sample wrote where -o said
    assert main(["export", str(model_folder), "-o", str(tmp_path / "again.safetensors")]) == 0
