"""A decoder as data: the operations the latent explorer's page runs (explorer/ops.js).

Each model's `decoder_ops` describes its own `decode` for one code with these helpers,
so a new architecture joins the explorer without an edit there; its likelihood's
`mean_ops` add the step from the decoder's parameters to the picture shown.

An operation is a dict: "op" names it, its tensors are torch tensors under the fields
below, everything else is JSON (ints, lists). The list maps a code z (D,) to an image;
no batch dimension, so "the first dimension" is the channel once the data is an image.

    linear            weight (out, in), bias (out)      x -> W x + b
    conv2d            weight (O, C, K, K), bias (O), stride, padding   zero padding
    conv_transpose2d  weight (C, O, K, K), bias (O), stride, padding
    relu, silu, tanh, sigmoid, continuous_bernoulli_mean    elementwise
    add               tensor (x's shape)                 x -> x + tensor
    reshape           shape                              the same numbers, a new shape
    chunk             chunks, index                      x.chunk(chunks, 0)[index]
    push, add_pop                                        keep x; add the kept x back
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from vaekit.errors import ConfigError
from vaekit.models.blocks import ResidualCell

Op = dict[str, Any]

# Layers without weights, by the op that runs them.
_ELEMENTWISE = {nn.ReLU: "relu", nn.SiLU: "silu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid"}
_CONVS = {nn.Conv2d: "conv2d", nn.ConvTranspose2d: "conv_transpose2d"}


def linear(layer: nn.Linear, rows: slice | None = None) -> Op:
    """A dense layer; `rows` keeps some outputs only (a Gaussian layer's mean half)."""
    if layer.bias is None:
        raise ConfigError(f"the explorer needs dense layers with a bias; got {layer!r}")
    weight, bias = layer.weight, layer.bias
    if rows is not None:
        weight, bias = weight[rows], bias[rows]
    return {"op": "linear", "weight": weight, "bias": bias}


def add(tensor: torch.Tensor) -> Op:
    """x + a constant, such as a learned initial state."""
    return {"op": "add", "tensor": tensor}


def reshape(shape: Sequence[int]) -> Op:
    return {"op": "reshape", "shape": [int(n) for n in shape]}


def residual(ops: list[Op]) -> list[Op]:
    """x + f(x) for f given as operations."""
    return [{"op": "push"}, *ops, {"op": "add_pop"}]


def module_ops(module: nn.Module) -> list[Op]:
    """A module built from layers the page runs (Sequential, ResidualCell, dense and
    convolutional layers, activations, Unflatten) as operations, in forward order."""
    if isinstance(module, nn.Sequential):
        return [op for child in module for op in module_ops(child)]
    if isinstance(module, ResidualCell):
        return residual(module_ops(module.branch))
    if isinstance(module, nn.Linear):
        return [linear(module)]
    if type(module) in _ELEMENTWISE:
        return [{"op": _ELEMENTWISE[type(module)]}]
    if isinstance(module, nn.Unflatten) and module.dim == 1:  # (B, n) -> (B, *shape)
        return [reshape(module.unflattened_size)]
    if type(module) in _CONVS and _plain_conv(module):
        return [
            {
                "op": _CONVS[type(module)],
                "weight": module.weight,
                "bias": module.bias,
                "stride": module.stride[0],
                "padding": module.padding[0],
            }
        ]
    raise ConfigError(f"the explorer cannot run {module!r} in the browser")


def _plain_conv(module: nn.Conv2d | nn.ConvTranspose2d) -> bool:
    """A (transposed) convolution the page can run: square stride and padding, zeros,
    one group, no dilation or output padding, a bias."""
    return (
        getattr(module, "output_padding", (0, 0)) == (0, 0)
        and module.groups == 1
        and module.dilation == (1, 1)
        and module.padding_mode == "zeros"
        and isinstance(module.padding, tuple)
        and module.stride[0] == module.stride[1]
        and module.padding[0] == module.padding[1]
        and module.bias is not None
    )
