"""The procedural sprites: factor grid, counts, pixels by hand, determinism, the cache."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from vaekit.config import DataConfig
from vaekit.data import load_data, sprites
from vaekit.errors import DataError

SMALL = sprites.Grid(shapes=3, scales=2, orientations=4, positions=4)


def _unpacked(packed: np.ndarray) -> np.ndarray:
    return np.unpackbits(packed, axis=-1).astype(bool)


def test_the_full_grid_is_dsprites_sized():
    assert sprites.FULL.sizes == (3, 6, 40, 32, 32)
    assert len(sprites.FULL) == 737_280
    np.testing.assert_allclose(sprites.scale_values(), [0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    assert sprites.orientation_values()[1] == pytest.approx(2 * math.pi / 40)
    positions = sprites.position_values()
    assert positions[0] == 8.0 and positions[-1] == 54.5 and np.allclose(np.diff(positions), 1.5)


def test_factor_grid_lists_every_combination_once_in_order():
    grid = sprites.factor_grid(SMALL)
    assert grid.shape == (len(SMALL), 5)
    assert len({tuple(row) for row in grid}) == len(SMALL)
    assert tuple(grid[0]) == (0, 0, 0, 0, 0) and tuple(grid[-1]) == (2, 1, 3, 3, 3)
    assert tuple(grid[1]) == (0, 0, 0, 0, 1)  # y varies fastest
    for k, size in enumerate(SMALL.sizes):
        assert np.bincount(grid[:, k]).tolist() == [len(SMALL) // size] * size


def _image(shape: int, scale: int, orientation: int, x: int, y: int) -> np.ndarray:
    images = sprites.draw(SMALL)
    index = np.ravel_multi_index((shape, scale, orientation, x, y), SMALL.sizes)
    return _unpacked(images[index])


def test_an_upright_square_by_hand():
    """Scale 1, angle 0, centre on the pixel corner (8, 8): half-side 7.5 / sqrt 2 = 5.30,
    so the pixel centres 8 +- 0.5, ..., 8 +- 4.5 are in: columns and rows 3 .. 12."""
    image = _image(0, 1, 0, 0, 0)
    expected = np.zeros((64, 64), bool)
    expected[3:13, 3:13] = True
    np.testing.assert_array_equal(image, expected)


def test_areas_follow_the_shapes_and_the_scale():
    """Pixel counts near the continuous areas: square 2 (R s)^2, ellipse pi (R s)^2 / 2."""
    for scale_index, scale in enumerate(sprites.scale_values(SMALL)):
        radius = sprites.RADIUS * scale
        for orientation in range(4):
            square = _image(0, scale_index, orientation, 1, 2).sum()
            ellipse = _image(1, scale_index, orientation, 2, 1).sum()
            assert square == pytest.approx(2 * radius**2, rel=0.15)
            assert ellipse == pytest.approx(math.pi * radius**2 / 2, rel=0.2)


def test_moving_a_sprite_shifts_its_pixels():
    """Positions 0 and 2 of the small grid are 31 pixels apart, both on pixel corners."""
    a, b = _image(2, 1, 1, 0, 0), _image(2, 1, 1, 2, 0)
    step = int(sprites.position_values(SMALL)[2] - sprites.position_values(SMALL)[0])
    assert step == 31
    np.testing.assert_array_equal(np.roll(a, step, axis=1), b)


def test_rotation_turns_the_ellipse():
    """At angle 0 the ellipse lies along x; a quarter turn (index 1 of 4) stands it up."""
    flat, upright = _image(1, 1, 0, 1, 1), _image(1, 1, 1, 1, 1)
    rows, cols = np.nonzero(flat)
    assert np.ptp(cols) > 1.8 * np.ptp(rows)
    rows, cols = np.nonzero(upright)
    assert np.ptp(rows) > 1.8 * np.ptp(cols)
    assert flat.sum() == pytest.approx(upright.sum(), rel=0.1)


def test_every_sprite_lies_inside_the_image_and_drawing_repeats():
    first = sprites.draw(SMALL)
    assert _unpacked(first).reshape(len(SMALL), -1).sum(1).min() > 10
    np.testing.assert_array_equal(first, sprites.draw(SMALL))


@pytest.mark.slow
def test_full_build_matches_the_recorded_checksums_and_loads(tmp_path):
    """The whole set: drawn in seconds, the recorded sha256, splits, labels and limits."""
    folder = sprites.ensure_built(tmp_path)
    recorded = json.loads((folder / "checksums.json").read_text())
    assert recorded == sprites.CHECKSUMS
    config = DataConfig(dataset="sprites", data_dir=str(tmp_path), limit=500)
    train, test = load_data(config, "train"), load_data(config, "test")
    assert train.images.shape == (500, 1, 64, 64) and test.images.shape == (500, 1, 64, 64)
    assert set(train.images.unique().tolist()) == {0, 255}
    assert train.factors.shape == (500, 5) and (train.labels == train.factors[:, 0]).all()
    assert train.names == ("square", "ellipse", "heart")
    assert train.factor_names == sprites.FACTOR_NAMES
    # stored order: the test split is the first TEST_SIZE of a fixed permutation
    packed, factors = sprites.build(sprites.FULL)
    np.testing.assert_array_equal(test.factors.numpy(), factors[:500])
    row = sprites.TEST_SIZE + 7
    np.testing.assert_array_equal(train.images[7, 0].numpy() > 0, _unpacked(packed[row]))
    (folder / "factors.npy").write_bytes((folder / "factors.npy").read_bytes()[:-1] + b"\x07")
    with pytest.raises(DataError, match="damaged"):
        load_data(config, "test")


def test_a_drawing_that_differs_from_the_record_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(sprites, "FULL", SMALL)
    with pytest.raises(DataError, match="differ from vaekit's recorded"):
        sprites.ensure_built(tmp_path)
    assert not (tmp_path / "sprites" / "checksums.json").exists()
