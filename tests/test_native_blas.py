"""The sgemm the fast path's kernels call (native/blas.py): each candidate multiplies as
float64 does, through the kernels' own gemm, split over threads or not; the measured
choice is made once per machine and remembered; VAEKIT_SGEMM overrides it."""

from __future__ import annotations

import ctypes
from collections.abc import Iterator

import pytest
import torch

from vaekit import native
from vaekit.native import blas


@pytest.fixture(params=["torch", "openblas"])
def lib(request, monkeypatch) -> Iterator[ctypes.CDLL]:
    """The kernels loaded on one sgemm (skipped where it or a compiler is missing)."""
    if request.param == "openblas" and blas.openblas_sgemm(native.cache_dir()) is None:
        pytest.skip("numpy ships no OpenBLAS here")
    monkeypatch.setenv(blas.CHOICE_VARIABLE, request.param)
    native.load.cache_clear()
    if not native.available():
        pytest.skip("no C compiler here")
    yield native.load()
    native.load.cache_clear()


def _product(lib: ctypes.CDLL, m: int, k: int, n: int, ta: bool, tb: bool) -> None:
    g = torch.Generator().manual_seed(m * 7 + n)
    a = torch.randn(k, m, generator=g) if ta else torch.randn(m, k, generator=g)
    b = torch.randn(n, k, generator=g) if tb else torch.randn(k, n, generator=g)
    c = torch.full((m, n), float("nan"))
    dims = (ctypes.c_int * 5)(int(ta), int(tb), m, n, k)
    lib.vk_products(1, dims, native.pointers([a, b, c]), 1)
    want = (a.t() if ta else a).double() @ (b.t() if tb else b).double()
    torch.testing.assert_close(c.double(), want, rtol=1e-5, atol=1e-4 * k**0.5)


# odd sizes: the split's blocks round to 16 rows, the last takes the remainder
SHAPES = [(128, 784, 400), (784, 128, 400), (131, 397, 403), (400, 128, 2), (37, 5, 1029)]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(("ta", "tb"), [(False, False), (False, True), (True, False)])
@pytest.mark.parametrize("shape", SHAPES)
def test_products_through_the_kernels_gemm_match_float64(lib, shape, ta, tb, threads):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        _product(lib, *shape, ta, tb)
    finally:
        torch.set_num_threads(before)


def test_the_choice_is_measured_once_and_remembered(tmp_path, monkeypatch):
    if blas.openblas_sgemm(tmp_path) is None:
        pytest.skip("numpy ships no OpenBLAS here")
    monkeypatch.delenv(blas.CHOICE_VARIABLE, raising=False)
    calls = []
    # OpenBLAS twice as fast as PyTorch's BLAS: it is chosen
    monkeypatch.setattr(blas, "_timing", lambda s: calls.append(s.name) or (1.0 if s.wide else 2.0))
    assert blas.choose(tmp_path).wide
    assert len(calls) == 2
    monkeypatch.setattr(blas, "_timing", lambda s: pytest.fail("measured twice"))
    assert blas.choose(tmp_path).wide  # read back from the record
    assert len(list(tmp_path.glob("sgemm-*.json"))) == 1


def test_openblas_must_be_clearly_faster_to_be_chosen(tmp_path, monkeypatch):
    if blas.openblas_sgemm(tmp_path) is None:
        pytest.skip("numpy ships no OpenBLAS here")
    monkeypatch.delenv(blas.CHOICE_VARIABLE, raising=False)
    monkeypatch.setattr(blas, "_timing", lambda s: 0.95 if s.wide else 1.0)  # 5 %: not enough
    assert blas.choose(tmp_path).name == "torch"


def test_the_environment_overrides_the_measurement(tmp_path, monkeypatch):
    monkeypatch.setattr(blas, "_timing", lambda s: pytest.fail("no measurement when forced"))
    monkeypatch.setenv(blas.CHOICE_VARIABLE, "torch")
    assert blas.choose(tmp_path).name == "torch"
    if blas.openblas_sgemm(tmp_path) is not None:
        monkeypatch.setenv(blas.CHOICE_VARIABLE, "openblas")
        assert blas.choose(tmp_path).name.startswith("openblas")


def test_the_real_measurement_times_both(tmp_path):
    seconds = blas._timing(blas.torch_sgemm(), rounds=1, calls=2)
    assert 0 < seconds < 10
    openblas = blas.openblas_sgemm(tmp_path)
    if openblas is not None:
        assert 0 < blas._timing(openblas, rounds=1, calls=2) < 10


def test_a_folder_that_cannot_be_written_still_gets_a_choice(tmp_path, monkeypatch):
    source = blas.openblas_sgemm(tmp_path)
    if source is None:
        pytest.skip("numpy ships no OpenBLAS here")
    monkeypatch.delenv(blas.CHOICE_VARIABLE, raising=False)
    monkeypatch.setattr(blas, "_timing", lambda s: 1.0 if s.wide else 2.0)
    monkeypatch.setattr(blas, "openblas_sgemm", lambda directory: source)
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    assert blas.choose(blocked / "kernels").wide  # measured, not remembered, no error
