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
from vaekit import explore
from vaekit.cli import main
from vaekit.config import RunConfig, model_config
from vaekit.data import load_split, to_unit
from vaekit.evaluation.estimate import posterior_parameters

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
POINTS = 2000  # test images on the map: enough to see, quick to encode
# Fixed latent points, in and beyond the data (|z| up to 4), for the pixel comparisons.
Z_FIXED = [[0.0, 0.0, 0.0], [1.5, -0.7, 0.3], [-2.2, 1.1, -1.9], [3.9, 3.1, 2.5], [-4.0, -0.2, 4.0]]


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


def _data(page: Path) -> dict:
    text = (page.parent / explore.DATA_FILE).read_text()
    return json.loads(text[text.index("{") : text.rstrip().rindex(";")])


def _torch_pixels(model, z: list[list[float]]) -> np.ndarray:
    z = torch.tensor(z, dtype=torch.float32)[:, : model.latent_dim]
    return vaekit.decode(model, z).flatten(1).numpy()


# ------------------------------------------------------------------ without a browser


def _run_ops(ops: list[dict], tensors: dict[str, np.ndarray], z: np.ndarray) -> np.ndarray:
    """A float64 NumPy reading of the exported operations, written apart from PyTorch."""
    x = z.astype(np.float32).astype(np.float64)
    kept = []
    for op in ops:
        if op["op"] == "linear":
            x = tensors[op["weight"]] @ x + tensors[op["bias"]]
        elif op["op"] == "relu":
            x = np.maximum(x, 0)
        elif op["op"] == "tanh":
            x = np.tanh(x)
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
    return 1 / (1 + np.exp(-x.ravel()))


@pytest.mark.parametrize("name", ["mlp", "conv", "resconv", "iwae-1l", "iwae-2l"])
def test_exported_operations_are_the_decoder(runs, name):
    model = vaekit.load(runs[name], device="cpu")
    packed = explore.pack_decoder(model)
    weights = np.frombuffer(base64.b64decode(packed["weights"]), dtype="<f4")
    tensors = {
        key: weights[t["offset"] : t["offset"] + int(np.prod(t["shape"]))].reshape(t["shape"])
        for key, t in packed["tensors"].items()
    }
    assert len(weights) == sum(int(np.prod(t["shape"])) for t in packed["tensors"].values())
    expected = _torch_pixels(model, Z_FIXED)
    for z, want in zip(Z_FIXED, expected, strict=True):
        got = _run_ops(packed["ops"], tensors, np.array(z[: model.latent_dim]))
        np.testing.assert_allclose(got, want, atol=1e-5)


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


@pytest.mark.parametrize("name", ["mlp", "conv", "resconv", "iwae-1l"])
def test_browser_decoder_matches_pytorch(browser, runs, pages, name):
    _open(browser, pages[name].as_uri())
    model = vaekit.load(runs[name], device="cpu")
    z = [point[: model.latent_dim] for point in Z_FIXED]
    got = np.array(browser.execute_script("return arguments[0].map(window.vaekit.decode)", z))
    worst = float(np.abs(got - _torch_pixels(model, z)).max())
    rate = browser.execute_script("return window.vaekit.benchmark(200)")
    _record(f"{name}: max |JS - PyTorch| pixel", worst)
    _record(f"{name}: decodes per second", round(rate))
    assert worst <= 1e-4
    assert rate >= 30, f"only {rate:.0f} decodes per second"
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
