"""The MLP family's training step written out by hand: the seed model near its matrix products.

The autograd step spends most of its time outside the 14 matrix products (autograd's
graph, per-op dispatch, the optimiser wrapper, unfused element-wise passes; issue 22).
For the MLP VAE under the Bernoulli -ELBO the backward pass has a closed form, so this
step computes it directly into buffers allocated once: dl = sigmoid(l) - x, the ReLUs'
masks, dmu = dz + w mu and dlogvar = dz eps sigma / 2 + w (e^logvar - 1) / 2 (w the KL
weight), the weight gradients as products. With a compiler the whole forward and
backward is one call into `vaekit.native`'s C kernels; without one the same arithmetic
runs as PyTorch ops (one notice says so). Adam is `torch._fused_adam_` on the run's own
optimiser state tensors, so checkpoints save and restore exactly what the autograd path
would, and a resumed run continues bit for bit.

`fast_step` says whether a run qualifies; anything else trains on the autograd path.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vaekit import native
from vaekit.notices import notice

NO_COMPILER_NOTICE = (
    "the fast MLP kernels are not built (no C compiler, or its build failed): "
    "training with the hand-written PyTorch step"
)
_BUFFERS = ("x", "h1", "mu", "lv", "eps", "sd", "z", "h3", "logits", "dh3", "dz", "dmu", "dlv")


def ineligible(state: Any, train: Any) -> str | None:
    """Why this run cannot take the fast path (None: it can)."""
    cfg, model, objective = state.config.train, state.model, state.config.objective
    checks = (
        (not cfg.fast_path, "--no-fast-path"),
        (not hasattr(model, "fast_layers"), "not an MLP"),
        (getattr(model, "classes", 0), "a conditional model"),
        (model.prior is not None or model.flow is not None, "a learned prior or a flow"),
        (model.likelihood.name != "bernoulli", "not the bernoulli likelihood"),
        (objective.objective != "elbo" or objective.free_bits, "not the plain ELBO"),
        (cfg.precision != "fp32", "not fp32"),
        (state.device.type != "cpu", "not on the CPU"),
        (state.world.distributed, "data-parallel"),
        (state.scaler is not None, "a gradient scaler"),
        (state.config.data.binarize == "dynamic", "dynamic binarisation"),
        (train.images.dtype != torch.uint8, "float images"),
    )
    return next((why for failed, why in checks if failed), None)


def fallback_line(state: Any, train: Any) -> str | None:
    """The one line an MLP run that cannot take the fast path prints (why, and that it
    trains with autograd); None when it takes it, when the user turned it off, or when
    the model is no MLP (those never had one)."""
    why = ineligible(state, train)
    if why in (None, "--no-fast-path", "not an MLP"):
        return None
    return f"the MLP fast path does not apply ({why}): training on the autograd path"


def fast_step(state: Any, train: Any) -> FastMLPStep | None:
    """The fast step for this run, or None when it takes the autograd path."""
    if ineligible(state, train) is not None:
        return None
    return FastMLPStep(state, train.images)


class FastMLPStep:
    """One optimiser step of the MLP VAE on a batch of image indices, without autograd."""

    def __init__(self, state: Any, images: torch.Tensor) -> None:
        self.state = state
        self.images = images.reshape(images.shape[0], -1).contiguous()
        layers = state.model.fast_layers()
        self.params = [t for layer in layers for t in (layer.weight, layer.bias)]
        self.D, self.H = layers[0].in_features, layers[0].out_features
        self.L = layers[1].out_features
        size = sum(p.numel() for p in self.params)
        self.flat = torch.zeros(size)  # every gradient, side by side: one pass for the norm
        self.grads, offset = [], 0
        for p in self.params:
            self.grads.append(self.flat[offset : offset + p.numel()].view_as(p))
            offset += p.numel()
        self.lib = native.load()
        if self.lib is None:
            notice(NO_COMPILER_NOTICE)
        self.batch = state.config.train.batch_size
        self._allocate(self.batch)
        self.out = np.zeros(3, dtype=np.float64)
        self._out_p = self.out.ctypes.data_as(native.ctypes.POINTER(native.ctypes.c_double))
        self.adam: tuple[list[torch.Tensor], ...] | None = None
        self.noise = torch.empty(0, self.batch, self.L)  # grown to the first call's steps
        self._hyper = np.zeros(6, dtype=np.float64)

    def _allocate(self, rows: int) -> None:
        D, H, L = self.D, self.H, self.L
        widths = dict(x=D, h1=H, mu=L, lv=L, eps=L, sd=L, z=L, h3=H, logits=D, dh3=H)
        widths |= dict(dz=L, dmu=L, dlv=L, dh1=H)
        self.buf = {name: torch.empty(rows, width) for name, width in widths.items()}
        blocks = -(-rows // 64)
        self.scratch = torch.empty(blocks * max(2 * D, H))
        order = [*self.params, *self.grads, *(self.buf[n] for n in _BUFFERS), self.buf["dh1"]]
        self.pointers = native.pointers([*order, self.scratch, self.flat])

    def _adam_state(self) -> tuple[list[torch.Tensor], ...]:
        """The optimiser's own state tensors, created as torch.optim.Adam (fused) would."""
        optimizer = self.state.optimizer
        for p in self.params:
            st = optimizer.state[p]
            if not st:
                st["step"] = torch.zeros((), dtype=torch.float32)
                st["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                st["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        states = [optimizer.state[p] for p in self.params]
        return tuple([st[key] for st in states] for key in ("exp_avg", "exp_avg_sq", "step"))

    def load_batch(self, order: torch.Tensor, start: int, rows: int) -> None:
        """x = images[order[start:start + rows]] / 255, and this batch's noise from the
        global RNG (the draw the autograd path makes, so both paths see the same eps)."""
        self._gather(order, start, rows)
        torch.randn(rows, self.L, out=self.buf["eps"][:rows])

    def _gather(self, order: torch.Tensor, start: int, rows: int) -> None:
        x = self.buf["x"][:rows]
        if self.lib is not None:
            index = order.data_ptr() + start * order.element_size()
            self.lib.vk_gather(self.images.data_ptr(), index, rows, self.D, x.data_ptr())
        else:
            index = order[start : start + rows]
            x.copy_(torch.index_select(self.images, 0, index)).div_(255)

    def forward_backward(self, rows: int, weight: float, norm: bool) -> tuple[float, float, float]:
        """(summed recon, summed KL, squared gradient norm or 0) of the loaded batch, the
        gradients left in `self.grads`."""
        if self.lib is None:
            return torch_forward_backward(self, rows, weight, norm)
        self.lib.vk_step(
            rows, self.D, self.H, self.L, weight, int(norm), self.flat.numel(),
            self.pointers, self._out_p,
        )  # fmt: skip
        return float(self.out[0]), float(self.out[1]), float(self.out[2])

    def step(self, order: torch.Tensor, start: int, rows: int, weight: float) -> tuple:
        """One step on rows order[start:start + rows]: returns (recon, kl, bad)."""
        recon, kl, bad = self.steps(order, start, rows, [weight])[0]
        return float(recon), float(kl), bool(bad)

    def steps(self, order: torch.Tensor, start: int, rows: int, weights: list[float]) -> np.ndarray:
        """len(weights) steps on rows order[start:start + rows] in batches of the run's
        size (the last may be short), step i at KL weight weights[i]; every batch's noise
        is drawn first, in order, as the autograd path draws it. Returns (steps, 3):
        summed recon, summed KL, 1.0 where the step was skipped as bad."""
        count, size = len(weights), self.batch
        if -(-rows // size) != count or start + rows > order.numel():
            raise ValueError(f"{rows} rows from {start} are not {count} steps of {size} in order")
        if order.dtype != torch.int64 or not order.is_contiguous():  # the C loop indexes it
            raise ValueError("the order must be a contiguous int64 tensor")
        if count > self.noise.shape[0]:
            self.noise = torch.empty(count, size, self.L)
        for i in range(count):
            torch.randn(min(size, rows - i * size), self.L, out=self.noise[i, : rows - i * size])
        hyper = self.hyper()
        if self.lib is None or hyper is None:
            return self._python_steps(order, start, rows, weights)
        if self.adam is None:
            self.adam = self._adam_state()
            self._adam_p = native.pointers([t for group in self.adam for t in group])
        out = np.zeros((count, 3), dtype=np.float64)
        weights_c = (native.ctypes.c_float * count)(*weights)
        self._hyper[:] = hyper
        self.lib.vk_train(
            count, size, rows, self.D, self.H, self.L, self.images.data_ptr(),
            order.data_ptr() + start * order.element_size(), weights_c, self.noise.data_ptr(),
            self.pointers, self._adam_p, self._hyper.ctypes.data, out.ctypes.data,
        )  # fmt: skip
        return out

    def hyper(self) -> list[float] | None:
        """lr, beta1, beta2, eps, skip norm, clip norm for the C loop (0: off); None when
        the optimiser asks for what it does not do (weight decay)."""
        group, cfg = self.state.optimizer.param_groups[0], self.state.config.train
        if group["weight_decay"]:
            return None
        beta1, beta2 = group["betas"]
        skip, clip = cfg.skip_grad_norm or 0.0, cfg.max_grad_norm or 0.0
        return [float(group["lr"]), beta1, beta2, group["eps"], skip, clip]

    def _python_steps(
        self, order: torch.Tensor, start: int, rows: int, weights: list
    ) -> np.ndarray:
        """The same steps one at a time: the PyTorch engine (no compiler)."""
        cfg, out, size = self.state.config.train, np.zeros((len(weights), 3)), self.batch
        for i, weight in enumerate(weights):
            n = min(size, rows - i * size)
            self._gather(order, start + i * size, n)
            self.buf["eps"][:n].copy_(self.noise[i, :n])
            recon, kl, squares = self.forward_backward(n, weight, True)
            norm = math.sqrt(squares)
            bad = not (math.isfinite(recon + kl) and math.isfinite(norm))
            if cfg.skip_grad_norm and norm > cfg.skip_grad_norm:
                bad = True
            if not bad:
                if cfg.max_grad_norm and (coef := cfg.max_grad_norm / (norm + 1e-6)) < 1:
                    self.flat.mul_(coef)  # what clip_grad_norm_ does
                self._adam()
            out[i] = recon, kl, bad
        return out

    def _adam(self) -> None:
        if self.adam is None:
            self.adam = self._adam_state()
        exp_avgs, exp_avg_sqs, steps = self.adam
        group = self.state.optimizer.param_groups[0]
        beta1, beta2 = group["betas"]
        torch._foreach_add_(steps, 1)
        torch._fused_adam_(
            self.params, self.grads, exp_avgs, exp_avg_sqs, [], steps,
            lr=group["lr"], beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"],
            eps=group["eps"], amsgrad=False, maximize=False,
        )  # fmt: skip


@torch.no_grad()
def torch_forward_backward(
    step: FastMLPStep, rows: int, weight: float, norm: bool
) -> tuple[float, float, float]:
    """The C kernel's arithmetic as PyTorch ops into the same buffers (no compiler)."""
    b = {name: t[:rows] for name, t in step.buf.items()}
    W1, b1, Wm, bm, Wv, bv, W3, b3, W4, b4 = step.params
    gW1, gb1, gWm, gbm, gWv, gbv, gW3, gb3, gW4, gb4 = step.grads
    x, h1, mu, lv, h3, logits = b["x"], b["h1"], b["mu"], b["lv"], b["h3"], b["logits"]
    torch.addmm(b1, x, W1.t(), out=h1).relu_()
    torch.addmm(bm, h1, Wm.t(), out=mu)
    torch.addmm(bv, h1, Wv.t(), out=lv)
    sd = torch.mul(lv, 0.5, out=b["sd"]).exp_()
    z = torch.addcmul(mu, b["eps"], sd, out=b["z"])
    kl = (-0.5 * (1 + lv - mu.pow(2) - lv.exp())).sum()
    torch.addmm(b3, z, W3.t(), out=h3).relu_()
    torch.addmm(b4, h3, W4.t(), out=logits)
    recon = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
    dl = torch.sigmoid(logits, out=logits).sub_(x)
    torch.mm(dl.t(), h3, out=gW4)
    torch.sum(dl, 0, out=gb4)
    dh3 = torch.mm(dl, W4, out=b["dh3"]).masked_fill_(h3 <= 0, 0)
    torch.mm(dh3.t(), z, out=gW3)
    torch.sum(dh3, 0, out=gb3)
    dz = torch.mm(dh3, W3, out=b["dz"])
    dmu = torch.add(dz, mu, alpha=weight, out=b["dmu"])
    dlv = torch.mul(dz, b["eps"], out=b["dlv"]).mul_(sd).mul_(0.5)
    dlv.add_(lv.exp().sub_(1), alpha=0.5 * weight)
    torch.mm(dmu.t(), h1, out=gWm)
    torch.sum(dmu, 0, out=gbm)
    torch.mm(dlv.t(), h1, out=gWv)
    torch.sum(dlv, 0, out=gbv)
    dh1 = torch.mm(dmu, Wm, out=b["dh1"]).addmm_(dlv, Wv).masked_fill_(h1 <= 0, 0)
    torch.sum(dh1, 0, out=gb1)
    torch.mm(dh1.t(), x, out=gW1)
    squares = torch.linalg.vector_norm(step.flat).item() ** 2 if norm else 0.0
    return recon.item(), kl.item(), squares
