"""The latent explorer: the exported decoder against PyTorch, then the page in a real Chromium.

The browser tests drive Debian's chromium through its chromedriver with selenium;
nothing downloads a browser. Without them the tests skip, or fail when $CI is set
(`.ci/run` installs them). A screenshot lands in test-artifacts/explorer.png.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import vaekit
from vaekit import checkpoint, explore
from vaekit.cli import main
from vaekit.config import RunConfig, model_config
from vaekit.config.families import family_fields
from vaekit.data import load_split, to_unit
from vaekit.errors import ConfigError
from vaekit.evaluation.estimate import posterior_parameters
from vaekit.models import MODELS, VAE, build_model

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
POINTS = 2000  # test images on the map: enough to see, quick to encode
# Fixed latent points, in and beyond the data (|z| up to 4), for the pixel comparisons.
Z_FIXED = [[0.0, 0.0, 0.0], [1.5, -0.7, 0.3], [-2.2, 1.1, -1.9], [3.9, 3.1, 2.5], [-4.0, -0.2, 4.0]]
# Untrained instances of every registered model with Gaussian latents (the explorer's
# kind), and of likelihoods whose mean is not a plain sigmoid: (model, likelihood, shape).
# Not trained: their weights are scaled up instead, so the decoders' outputs reach the
# saturated and the near-zero ranges.
EXPLORABLE = sorted(name for name, cls in MODELS.items() if cls.gaussian_latents)  # not vq
TINY = [(name, "bernoulli", (1, 28, 28)) for name in EXPLORABLE] + [
    ("mlp", "continuous-bernoulli", (1, 28, 28)),
    ("hvae", "continuous-bernoulli", (1, 28, 28)),
    ("iwae-2l", "gaussian", (1, 28, 28)),
    ("conv", "gaussian-learned", (1, 28, 28)),
    ("resconv", "gaussian-learned", (3, 8, 8)),  # colour, two maps per channel
]
TINY_IDS = [f"{name}-{likelihood}-{'x'.join(map(str, shape))}" for name, likelihood, shape in TINY]


def _train(tmp_path: Path, mnist_dir: Path, **model: object) -> Path:
    config = RunConfig()
    config.data.data_dir = str(mnist_dir)
    config.data.download = False
    config.data.limit = 1000
    config.train.epochs = 1
    config.train.pictures = False
    config.train.plots = False
    config.train.device = "cpu"
    config.model = model_config(str(model.pop("name", "mlp")), **model)
    return vaekit.train(config, tmp_path, progress=False)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, mnist_dir) -> dict[str, Path]:
    """One short run per decoder: an MLP with a 2-D latent, a small conv with a 3-D one,
    the IWAE paper's one- and two-layer nets (tanh layers) with 3-D top latents."""
    base = tmp_path_factory.mktemp("explore")
    return {
        "mlp": _train(base / "mlp", mnist_dir, hidden_dim=64),
        "conv": _train(
            base / "conv", mnist_dir, name="conv", latent_dim=3, hidden_dim=32, channels=8
        ),
        "resconv": _train(
            base / "resconv", mnist_dir, name="resconv", latent_dim=3, hidden_dim=32, channels=4
        ),
        "iwae-1l": _train(base / "iwae-1l", mnist_dir, name="iwae-1l", latent_dim=3, hidden_dim=32),
        "iwae-2l": _train(base / "iwae-2l", mnist_dir, name="iwae-2l", latent_dim=3, hidden_dim=32),
    }


@pytest.fixture(scope="module")
def pages(runs, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("pages")
    return {
        name: explore.write_explorer(run, out / name, points=POINTS, device="cpu")
        for name, run in runs.items()
    }


def _tiny_run(folder: Path, name: str, likelihood: str, shape: tuple[int, int, int]) -> Path:
    """A run folder holding a tiny, untrained `name` model, weights scaled up."""
    config = RunConfig()
    sizes = dict(latent_dim=3, hidden_dim=16, channels=4, groups=3)
    own = family_fields(name)  # each family takes only its own fields
    config.model = model_config(
        name, likelihood=likelihood, **{k: v for k, v in sizes.items() if k in own}
    )
    torch.manual_seed(0)
    model = build_model(config.model, shape)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3) if p.dim() > 1 else p.normal_(0, 0.5)
    folder.mkdir(parents=True)
    checkpoint.save(checkpoint.Checkpoint(config, shape, model.state_dict()), folder)
    return folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """TINY's (run folder, page) pairs by TINY_IDS; the pages have no backdrop (points 0)."""
    base = tmp_path_factory.mktemp("tiny")
    out = {}
    for case, spec in zip(TINY_IDS, TINY, strict=True):
        run = _tiny_run(base / case / "run", *spec)
        out[case] = run, explore.write_explorer(run, base / case / "page", points=0, device="cpu")
    return out


@pytest.fixture(scope="module")
def hvae_page(tmp_path_factory, mnist_dir) -> Path:
    """`vaekit explore --pretrained mnist-hvae -o DIR`, as a user runs it."""
    out = tmp_path_factory.mktemp("hvae") / "page"
    command = ["explore", "--pretrained", "mnist-hvae", "-o", str(out), "--data-dir"]
    assert main([*command, str(mnist_dir), "--points", "1000", "--device", "cpu"]) == 0
    return out / "index.html"


def _codes(dim: int) -> list[list[float]]:
    """Z_FIXED's points for a latent of `dim` <= 3 dimensions; beyond, as many fixed
    draws of N(0, 2^2) (so again in and beyond the data)."""
    if dim <= 3:
        return [point[:dim] for point in Z_FIXED]
    return (np.random.default_rng(0).normal(size=(len(Z_FIXED), dim)) * 2).tolist()


def _data(page: Path) -> dict:
    text = (page.parent / explore.DATA_FILE).read_text()
    return json.loads(text[text.index("{") : text.rstrip().rindex(";")])


def _torch_pixels(model, z: list[list[float]]) -> np.ndarray:
    z = torch.tensor(z, dtype=torch.float32)[:, : model.latent_dim]
    return vaekit.decode(model, z).flatten(1).numpy()


# ------------------------------------------------------------------ without a browser


def _run_ops(
    ops: list[dict], tensors: dict[str, np.ndarray], z: np.ndarray, label: int = 0
) -> np.ndarray:
    """A float64 NumPy reading of the exported operations, written apart from PyTorch;
    `label`: the class a conditional decoder's "label" op appends, one-hot."""
    x = z.astype(np.float32).astype(np.float64)
    kept = []
    for op in ops:
        if op["op"] == "label":
            x = np.concatenate([x, np.eye(op["classes"])[label]])
        elif op["op"] == "linear":
            x = tensors[op["weight"]] @ x + tensors[op["bias"]]
        elif op["op"] == "relu":
            x = np.maximum(x, 0)
        elif op["op"] == "tanh":
            x = np.tanh(x)
        elif op["op"] == "sigmoid":
            x = 1 / (1 + np.exp(-x))
        elif op["op"] == "continuous_bernoulli_mean":  # 1/(1 - e^-l) - 1/l, its limit at 0
            small, safe = np.abs(x) < 1e-3, np.where(np.abs(x) < 1e-3, 1.0, x)
            x = np.where(small, 0.5 + x / 12, 1 / (1 - np.exp(-safe)) - 1 / safe)
        elif op["op"] == "add":
            x = x + tensors[op["tensor"]]
        elif op["op"] == "chunk":
            x = np.split(x, op["chunks"])[op["index"]]
        elif op["op"] == "silu":
            x = x / (1 + np.exp(-x))
        elif op["op"] == "push":
            kept.append(x.copy())
        elif op["op"] == "add_pop":
            x = x + kept.pop()
        elif op["op"] == "conv2d":
            w, s, p = tensors[op["weight"]], op["stride"], op["padding"]  # w: (O, C, K, K)
            k = w.shape[2]
            padded = np.pad(x, ((0, 0), (p, p), (p, p)))
            ho, wo = (padded.shape[1] - k) // s + 1, (padded.shape[2] - k) // s + 1
            x = (
                np.stack(
                    [
                        np.einsum("ckl,ockl->o", padded[:, i * s : i * s + k, j * s : j * s + k], w)
                        for i in range(ho)
                        for j in range(wo)
                    ],
                    axis=1,
                ).reshape(-1, ho, wo)
                + tensors[op["bias"]][:, None, None]
            )
        elif op["op"] == "reshape":
            x = x.reshape(op["shape"])
        elif op["op"] == "conv_transpose2d":
            w, s, p = tensors[op["weight"]], op["stride"], op["padding"]  # w: (C, O, K, K)
            (_, h, wd), (_, o, k, _) = x.shape, w.shape
            full = np.zeros((o, (h - 1) * s + k, (wd - 1) * s + k))
            for iy in range(h):
                for ix in range(wd):
                    patch = np.einsum("c,cokl->okl", x[:, iy, ix], w)
                    full[:, iy * s : iy * s + k, ix * s : ix * s + k] += patch
            x = (
                full[:, p : full.shape[1] - p, p : full.shape[2] - p]
                + tensors[op["bias"]][:, None, None]
            )
        else:
            raise AssertionError(f"unknown op {op['op']}")
    return x.ravel()


def _unpack(packed: dict) -> dict[str, np.ndarray]:
    weights = np.frombuffer(base64.b64decode(packed["weights"]), dtype="<f4")
    assert len(weights) == sum(int(np.prod(t["shape"])) for t in packed["tensors"].values())
    return {
        key: weights[t["offset"] : t["offset"] + int(np.prod(t["shape"]))].reshape(t["shape"])
        for key, t in packed["tensors"].items()
    }


def _assert_operations_are_the_decoder(model: VAE) -> None:
    """The exported list, run by _run_ops, gives vaekit.decode's images (the mean included)."""
    packed = json.loads(json.dumps(explore.pack_decoder(model)))  # what the page receives
    tensors = _unpack(packed)
    codes = _codes(model.latent_dim)
    expected = _torch_pixels(model, codes)
    assert expected.shape[1] == int(np.prod(model.image_shape))
    for z, want in zip(codes, expected, strict=True):
        np.testing.assert_allclose(_run_ops(packed["ops"], tensors, np.array(z)), want, atol=1e-5)


@pytest.mark.parametrize("name", ["mlp", "conv", "resconv", "iwae-1l", "iwae-2l"])
def test_exported_operations_are_the_decoder(runs, name):
    _assert_operations_are_the_decoder(vaekit.load(runs[name], device="cpu"))


@pytest.mark.parametrize("case", TINY_IDS)
def test_every_model_and_likelihood_describes_its_decoder(tiny, case):
    model = vaekit.load(tiny[case][0], device="cpu")
    _assert_operations_are_the_decoder(model)
    if model.likelihood.name == "continuous-bernoulli":  # both branches of its mean
        logits = model.decode(torch.tensor(_codes(3))).abs()
        assert (logits < 0.5).any() and (logits > 0.5).any()


def _conditional_config(name: str) -> RunConfig:
    sizes = dict(latent_dim=3, hidden_dim=16, channels=4, groups=2)
    own = family_fields(name)
    config = RunConfig()
    config.model = model_config(
        name, condition="label", **{k: v for k, v in sizes.items() if k in own}
    )
    return config


def _conditional(name: str) -> VAE:
    """An untrained conditional `name` model, weights scaled up as the TINY ones are."""
    torch.manual_seed(0)
    model = build_model(_conditional_config(name).model, (1, 28, 28)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3) if p.dim() > 1 else p.normal_(0, 0.5)
    return model


CONDITIONAL = ["mlp", "conv", "resconv", "iwae-1l", "hvae"]


@pytest.mark.parametrize("name", CONDITIONAL)
def test_a_conditional_decoder_takes_the_pages_label(name):
    """The "label" op appends the picked class: each label gives decode(z, label)."""
    model = _conditional(name)
    packed = json.loads(json.dumps(explore.pack_decoder(model)))
    assert packed["ops"][0] == {"op": "label", "classes": 10}
    tensors, codes = _unpack(packed), _codes(model.latent_dim)
    for label in (0, 4, 9):
        y = torch.full((len(codes),), label)
        with torch.no_grad():
            want = torch.sigmoid(model.decode(torch.tensor(codes), y)).flatten(1).numpy()
        for z, pixels in zip(codes, want, strict=True):
            got = _run_ops(packed["ops"], tensors, np.array(z), label)
            np.testing.assert_allclose(got, pixels, atol=1e-5)


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js to run ops.js")
def test_ops_js_decodes_each_label_of_a_conditional_model(tmp_path):
    """explorer/ops.js itself (in Node, without a browser): setLabel picks the class."""
    model = _conditional("hvae")
    codes = _codes(model.latent_dim)
    (tmp_path / "spec.json").write_text(json.dumps(explore.pack_decoder(model)))
    ops_js = Path(explore.__file__).parent / "explorer" / "ops.js"
    script = (
        "globalThis.window = globalThis; require(process.argv[1]);"
        "const spec = JSON.parse(require('fs').readFileSync(process.argv[2]));"
        "const decode = window.VAEKIT_OPS.makeDecoder(spec, 3);"
        "const codes = JSON.parse(process.argv[3]); const out = { classes: decode.classes };"
        "for (const label of [0, 7]) {"
        "  decode.setLabel(label); out[label] = codes.map((z) => Array.from(decode(z))); }"
        "console.log(JSON.stringify(out));"
    )
    argv = ["node", "-e", script, str(ops_js), str(tmp_path / "spec.json"), json.dumps(codes)]
    got = json.loads(subprocess.run(argv, capture_output=True, check=True, text=True).stdout)
    assert got["classes"] == 10
    for label in (0, 7):
        with torch.no_grad():
            y = torch.full((len(codes),), label)
            want = torch.sigmoid(model.decode(torch.tensor(codes), y)).flatten(1).numpy()
        np.testing.assert_allclose(np.array(got[str(label)]), want, atol=1e-4)


def test_the_shipped_hvae_describes_its_decoder():
    model = vaekit.load_pretrained("mnist-hvae", device="cpu")
    _assert_operations_are_the_decoder(model)
    # The top group's prior mean, then the lower groups' prior means, as decode says.
    assert [op["op"] for op in model.explorer_decoder()].count("push") > model.groups


def test_a_model_without_a_description_is_refused():
    class Opaque(VAE):
        def __init__(self) -> None:
            super().__init__((1, 4, 4), 2)
            self.layer = torch.nn.Linear(2, 16)

    with pytest.raises(ConfigError, match="Opaque model does not describe its decoder"):
        explore.pack_decoder(Opaque())


def test_page_files_and_scatter(runs, pages, mnist_dir):
    page = pages["conv"]
    assert sorted(p.name for p in page.parent.iterdir()) == sorted(
        [*explore.ASSETS, explore.DATA_FILE]
    )
    data = _data(page)
    meta, scatter = data["meta"], data["scatter"]
    assert meta["latentDim"] == 3 and meta["model"] == "conv" and meta["imageShape"] == [1, 28, 28]
    assert meta["classNames"] == [str(d) for d in range(10)] and meta["epoch"] == 1
    assert len(meta["axes"]) == 2 and meta["axes"][0] != meta["axes"][1]
    # The quantised means are the model's posterior means of the chosen test images.
    model = vaekit.load(runs["conv"], device="cpu")
    test = load_split("mnist", "test", mnist_dir, download=False)
    chosen = torch.randperm(len(test), generator=torch.Generator().manual_seed(0))[:POINTS]
    mu, _ = posterior_parameters(model, to_unit(test.images[chosen]))
    codes = np.frombuffer(base64.b64decode(scatter["coords"]), "<u2").reshape(POINTS, 3)
    lo, hi = np.array(scatter["lo"]), np.array(scatter["hi"])
    step = (hi - lo).max() / 65535  # one quantisation step
    np.testing.assert_allclose(lo + codes / 65535 * (hi - lo), mu.numpy(), rtol=0, atol=step)
    labels = np.frombuffer(base64.b64decode(scatter["labels"]), "u1")
    np.testing.assert_array_equal(labels, test.labels[chosen].numpy())
    for d, (low, high) in enumerate(meta["range"]):
        assert low <= min(lo[d], -3) and high >= max(hi[d], 3)


def test_explore_cli_writes_the_page_and_refuses_bad_input(runs, tmp_path, capsys):
    out = tmp_path / "page"
    assert main(["explore", str(runs["mlp"]), "-o", str(out), "--points", "0"]) == 0
    assert f"Wrote {out / 'index.html'}" in capsys.readouterr().out
    assert _data(out / "index.html")["scatter"] is None
    assert main(["explore", str(tmp_path / "nothing"), "-o", str(out)]) == 1
    assert "no checkpoint at" in capsys.readouterr().err
    assert main(["explore", str(runs["mlp"]), "--points", "-1"]) == 2
    assert "points must be >= 0" in capsys.readouterr().err


# ------------------------------------------------------------------ in Chromium

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
WINDOW = (1280, 900)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Headless Chromium with a fresh profile, its console log kept for each page."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).is_file()]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing.append("the selenium package (pip install -e '.[dev]')")
    if missing:
        reason = (
            f"browser tests need {', '.join(missing)}; install Debian's browser with "
            "`apt-get install chromium chromium-driver`"
        )
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_script_timeout(30)
    yield driver
    driver.quit()


def _open(driver, url: str) -> None:
    """Load the page and wait until it has decoded once; no console errors on the way."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get_log("browser")  # drop what earlier pages logged
    driver.get(url)
    WebDriverWait(driver, 20).until(
        lambda d: d.execute_script("return !!(window.vaekit && window.vaekit.state().decodes)")
    )
    _no_console_errors(driver)


def _no_console_errors(driver) -> None:
    errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, f"console errors: {errors}"


def _next_frames(driver) -> None:
    driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "requestAnimationFrame(() => requestAnimationFrame(() => done()));"
    )


# The decoded image as shown: the red channel at the centre of each of the 28 x 28 cells.
SHOWN_PIXELS = """
const c = document.getElementById('decoded');
const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
const out = [];
for (let i = 0; i < 28; i++) for (let j = 0; j < 28; j++) {
  const y = Math.floor((i + 0.5) * c.height / 28), x = Math.floor((j + 0.5) * c.width / 28);
  out.push(d[(y * c.width + x) * 4]);
}
return out;
"""


# The interpolation strip's first and last images, sampled as SHOWN_PIXELS samples.
STRIP_PIXELS = """
const c = document.getElementById('strip');
const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
const cell = c.width / 10;
return [0, 9].map((k) => {
  const frame = Math.round((k + 1) * cell) - Math.round(k * cell) - window.devicePixelRatio;
  const out = [];
  for (let i = 0; i < 28; i++) for (let j = 0; j < 28; j++) {
    const y = Math.floor((i + 0.5) * c.height / 28);
    const x = Math.round(k * cell) + Math.floor((j + 0.5) * frame / 28);
    out.push(d[(y * c.width + x) * 4]);
  }
  return out;
});
"""


def _record(name: str, value: object) -> None:
    """Numbers worth reading after a run (pixel differences, decodes per second)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / "explorer-measurements.json"
    found = json.loads(path.read_text()) if path.is_file() else {}
    path.write_text(json.dumps(found | {name: value}, indent=2) + "\n")
    print(f"{name}: {value}")


def _assert_browser_decodes(driver, model: VAE, name: str) -> None:
    """The open page's decoder against vaekit.decode at _codes, and its speed."""
    z = _codes(model.latent_dim)
    got = np.array(driver.execute_script("return arguments[0].map(window.vaekit.decode)", z))
    want = _torch_pixels(model, z)
    assert got.shape == want.shape
    worst = float(np.abs(got - want).max())
    rate = driver.execute_script("return window.vaekit.benchmark(200)")
    _record(f"{name}: max |JS - PyTorch| pixel", worst)
    _record(f"{name}: decodes per second", round(rate))
    assert worst <= 1e-4
    assert rate >= 30, f"only {rate:.0f} decodes per second"
    assert driver.find_element("id", "latent-note").text == model.explorer_note
    _no_console_errors(driver)


@pytest.mark.parametrize("name", ["mlp", "conv", "resconv", "iwae-1l", "iwae-2l"])
def test_browser_decoder_matches_pytorch(browser, runs, pages, name):
    _open(browser, pages[name].as_uri())
    _assert_browser_decodes(browser, vaekit.load(runs[name], device="cpu"), name)


@pytest.mark.parametrize("case", TINY_IDS)
def test_browser_runs_every_model_and_likelihood(browser, tiny, case):
    run, page = tiny[case]
    _open(browser, page.as_uri())
    _assert_browser_decodes(browser, vaekit.load(run, device="cpu"), f"tiny {case}")


def test_browser_shipped_hvae(browser, hvae_page):
    """The pretrained hierarchical model: decodes, the image shown, its map and sliders."""
    model = vaekit.load_pretrained("mnist-hvae", device="cpu")
    _open(browser, hvae_page.as_uri())
    _assert_browser_decodes(browser, model, "mnist-hvae")
    assert len(browser.find_elements("css selector", "#sliders input[type=range]")) == 16
    assert "1000 test images" in browser.find_element("id", "info").text
    for z in _codes(16)[:2]:  # what is shown is the decode of that z
        browser.execute_script("window.vaekit.setZ(arguments[0])", z)
        _next_frames(browser)
        shown = np.array(browser.execute_script(SHOWN_PIXELS))
        assert np.abs(shown - np.round(255 * _torch_pixels(model, [z])[0])).max() <= 1
    ARTIFACTS.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "explorer-hvae.png"))
    _no_console_errors(browser)


def test_cursor_moves_pins_and_screenshot(browser, runs, pages):
    from selenium.webdriver.common.action_chains import ActionChains

    driver = browser
    _open(driver, pages["mlp"].as_uri())
    model = vaekit.load(runs["mlp"], device="cpu")
    scatter = driver.find_element("id", "map")
    shown, zs = [], []
    for dx, dy in [(-150, 120), (160, -140)]:  # from the map's centre, in CSS pixels
        ActionChains(driver).move_to_element_with_offset(scatter, dx, dy).perform()
        _next_frames(driver)
        shown.append(np.array(driver.execute_script(SHOWN_PIXELS)))
        zs.append(driver.execute_script("return window.vaekit.state().z"))
    assert zs[0][0] < zs[1][0] and zs[0][1] < zs[1][1]  # right is +z[0], up is +z[1]
    assert np.abs(shown[0] - shown[1]).max() > 20, "moving the cursor did not change the image"
    for z, pixels in zip(zs, shown, strict=True):  # what is shown is the decode of that z
        want = np.round(255 * _torch_pixels(model, [z])[0])
        assert np.abs(pixels - want).max() <= 1

    # Live: a scripted sweep over the map, decoded at most once per frame.
    before = driver.execute_script("return window.vaekit.state()")
    sweep = ActionChains(driver, duration=10).move_to_element_with_offset(scatter, -200, 0)
    for _ in range(40):
        sweep.move_by_offset(10, 3)
    start = time.perf_counter()
    sweep.perform()
    _next_frames(driver)
    seconds = time.perf_counter() - start
    after = driver.execute_script("return window.vaekit.state()")
    decodes = after["decodes"] - before["decodes"]
    assert 0 < decodes <= after["frames"] - before["frames"]
    _record("mlp: decodes per second during a scripted sweep", round(decodes / seconds))

    # Two pins and the interpolation strip between them.
    ActionChains(driver).move_to_element_with_offset(scatter, -120, -100).click().perform()
    ActionChains(driver).move_to_element_with_offset(scatter, 130, 90).click().perform()
    ActionChains(driver).move_to_element_with_offset(scatter, 40, -60).perform()
    _next_frames(driver)
    assert len(driver.execute_script("return window.vaekit.state().pins")) == 2
    pins = driver.execute_script("return window.vaekit.state().pins")
    assert len(pins) == 2
    # The strip's first and last images are the two pins' decodes.
    strip_ends = driver.execute_script(STRIP_PIXELS)
    for pin, pixels in zip(pins, strip_ends, strict=True):
        want = np.round(255 * _torch_pixels(model, [pin])[0])
        assert np.abs(np.array(pixels) - want).max() <= 1
    ARTIFACTS.mkdir(exist_ok=True)
    assert driver.save_screenshot(str(ARTIFACTS / "explorer.png"))
    _no_console_errors(driver)

    # Phone-sized: one column, nothing wider than the screen.
    driver.set_window_size(390, 844)
    try:
        _next_frames(driver)
        layout = driver.execute_script(
            "const box = (id) => document.getElementById(id).getBoundingClientRect();"
            "return {map: box('map-panel'), side: box('side'), width: window.innerWidth,"
            "        scroll: document.documentElement.scrollWidth};"
        )
        assert layout["side"]["top"] >= layout["map"]["bottom"] - 1
        assert layout["scroll"] <= layout["width"]
        assert driver.save_screenshot(str(ARTIFACTS / "explorer-phone.png"))
    finally:
        driver.set_window_size(*WINDOW)


def test_served_page_with_sliders(browser, runs, tmp_path):
    """`vaekit explore --serve --port 0` as a user runs it; the 3-D latent gets sliders."""
    command = [sys.executable, "-m", "vaekit", "explore", str(runs["conv"]), "-o", str(tmp_path)]
    server = subprocess.Popen(
        [*command, "--points", "500", "--device", "cpu", "--serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = []
        while not any("Serving" in line for line in lines):
            line = server.stdout.readline()
            assert line, f"vaekit explore --serve stopped: {''.join(lines)}"
            lines.append(line)
        url = re.search(r"http://127\.0\.0\.1:\d+/", lines[-1])[0]
        _open(browser, url)
        sliders = browser.find_elements("css selector", "#sliders input[type=range]")
        assert len(sliders) == 3
        assert browser.find_element("id", "axes").is_displayed()
        before = np.array(browser.execute_script(SHOWN_PIXELS))
        browser.execute_script(
            "const s = arguments[0]; s.value = s.max; s.dispatchEvent(new Event('input'));",
            sliders[0],
        )
        _next_frames(browser)
        assert browser.execute_script("return window.vaekit.state().z")[0] > 3
        assert np.abs(np.array(browser.execute_script(SHOWN_PIXELS)) - before).max() > 0
        _no_console_errors(browser)
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_browser_label_picker_of_a_conditional_model(browser, tmp_path):
    """A conditional model's page shows a label picker; the decode follows the label."""
    model = _conditional("conv")
    folder = tmp_path / "run"
    folder.mkdir()
    state = model.state_dict()
    checkpoint.save(checkpoint.Checkpoint(_conditional_config("conv"), (1, 28, 28), state), folder)
    page = explore.write_explorer(folder, tmp_path / "page", points=0, device="cpu")
    _open(browser, page.as_uri())
    options = browser.find_elements("css selector", "#label option")
    assert len(options) == 10 and browser.find_element("id", "label-box").is_displayed()
    codes = _codes(model.latent_dim)
    for label in (0, 7):
        browser.execute_script("window.vaekit.setLabel(arguments[0])", label)
        script = "return arguments[0].map(window.vaekit.decode)"
        got = np.array(browser.execute_script(script, codes))
        with torch.no_grad():
            y = torch.full((len(codes),), label)
            want = torch.sigmoid(model.decode(torch.tensor(codes), y)).flatten(1).numpy()
        np.testing.assert_allclose(got, want, atol=1e-4)
    _no_console_errors(browser)
