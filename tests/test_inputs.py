"""The API's input checks: vaekit's own errors with the expected and found shapes, and
tensors, arrays and uint8 pixels taken directly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import vaekit
from vaekit.config import MLPConfig
from vaekit.errors import InputError
from vaekit.models import build_model


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    net = build_model(MLPConfig(latent_dim=3, hidden_dim=16), (1, 28, 28)).eval()
    return net


def test_arrays_uint8_and_single_images_encode_like_float_tensors(model):
    pixels = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8)
    expected, _ = vaekit.encode(model, pixels.float() / 255)
    from_numpy, _ = vaekit.encode(model, pixels.numpy())
    grey_batch, _ = vaekit.encode(model, pixels[:, 0])  # (B, H, W) for a grey model
    single, _ = vaekit.encode(model, (pixels[0].float() / 255).tolist())
    torch.testing.assert_close(from_numpy, expected)
    torch.testing.assert_close(grey_batch, expected)
    torch.testing.assert_close(single, expected[:1])


@pytest.mark.parametrize(
    ("x", "fragment"),
    [
        (torch.rand(2, 784), "shape (B, 1, 28, 28) for this model; got (2, 784)"),
        (torch.rand(2, 3, 28, 28), "got (2, 3, 28, 28)"),
        (torch.rand(2, 1, 28, 28) * 2, "in [0, 1]; got values in"),
        (torch.full((1, 1, 28, 28), float("nan")), "finite"),
        (torch.ones(1, 1, 28, 28, dtype=torch.bool), "uint8 or float"),
        ("pixels", "tensor or an array"),
    ],
)
def test_bad_images_name_expected_and_found(model, x, fragment):
    with pytest.raises(InputError, match=None) as caught:
        vaekit.encode(model, x)
    assert fragment in str(caught.value)


def test_decode_checks_codes_and_takes_one_code(model):
    z = np.zeros(3, dtype=np.float32)
    one = vaekit.decode(model, z)
    assert one.shape == (1, 1, 28, 28)
    torch.testing.assert_close(one, vaekit.decode(model, torch.zeros(5, 3))[:1])
    with pytest.raises(InputError, match=r"shape \(B, 3\) for this model; got \(5, 2\)"):
        vaekit.decode(model, torch.zeros(5, 2))
    with pytest.raises(InputError, match="finite"):
        vaekit.decode(model, torch.tensor([[0.0, float("inf"), 0.0]]))
