"""The bars over the long phases: each phase is named and the bar reaches its total;
`progress=False` (the CLI's --no-progress) turns them off."""

from __future__ import annotations

from typing import ClassVar

import pytest
import torch

import vaekit
from vaekit import api, fid


class RecordingBar:
    """Stands in for tqdm: keeps what a bar was told, so a test can read it back."""

    made: ClassVar[list[RecordingBar]] = []

    def __init__(self, iterable=None, total=None, desc="", disable=False, **_: object) -> None:
        self.iterable, self.total, self.desc, self.disable = iterable, total, desc, disable
        self.done, self.postfixes = 0, []
        RecordingBar.made.append(self)

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.done += 1

    def __enter__(self) -> RecordingBar:
        return self

    def __exit__(self, *_: object) -> None:
        return None

    def update(self, n: int = 1) -> None:
        self.done += n

    def set_postfix_str(self, text: str) -> None:
        self.postfixes.append(text)


@pytest.fixture
def bars(monkeypatch) -> list[RecordingBar]:
    RecordingBar.made = []
    monkeypatch.setattr(api, "tqdm", RecordingBar)
    monkeypatch.setattr(fid, "tqdm", RecordingBar)
    return RecordingBar.made


@pytest.mark.parametrize("progress", [True, False])
def test_end_of_run_bar_names_each_phase_and_reaches_its_total(
    small_config, tmp_path, bars, progress
):
    small_config.train.epochs, small_config.train.pictures = 1, True
    run = vaekit.train(small_config, tmp_path / "run", log=lambda _: None, progress=False)
    bars.clear()
    api.finish_run(run, progress=progress)
    (bar,) = bars
    assert bar.desc == "End of run" and bar.done == bar.total == 3
    assert bar.postfixes == [
        "loading the model and test split",
        "samples and reconstructions",
        "latent plots and report.html",
    ]
    assert bar.disable is (None if progress else True)  # None: on when stderr is a terminal
    assert (run / "samples.png").exists() and (run / "reconstructions.png").exists()


def test_fid_feature_bar_counts_batches_and_leaves_the_features_unchanged(bars):
    torch.manual_seed(0)
    net = fid.FeatureNet((1, 28, 28), 10, fid.Recipe()).eval()
    images = torch.rand(250, 1, 28, 28)
    quiet = fid.features(net, images, batch_size=100)
    shown = fid.features(net, images, batch_size=100, progress=True, desc="FID: samples")
    assert torch.equal(quiet, shown)
    assert [(b.desc, b.done, b.disable) for b in bars] == [
        ("FID features", 3, True),
        ("FID: samples", 3, None),
    ]
