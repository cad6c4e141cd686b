"""Small C kernels compiled on first use, cached, and loaded with ctypes.

Why C and not `torch.utils.cpp_extension`: the kernels need no PyTorch headers (they
take raw float pointers and call an sgemm by address: PyTorch's own or numpy's OpenBLAS,
whichever `vaekit.native.blas` measured faster), so a build takes about a second instead
of a minute, which keeps the tests' first use cheap.
The shared library is cached under ~/.cache/vaekit/kernels (XDG_CACHE_HOME honoured, or
$VAEKIT_KERNEL_DIR), named by a hash of the sources, the compiler's version and the flags,
so a changed source or compiler builds afresh; it is written under a temporary name and renamed,
so processes building at once never load a half-written file.

Without a working compiler (or with VAEKIT_NO_NATIVE=1, which tests use to simulate
one missing) `load` returns None and the caller takes its pure-PyTorch path.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

from vaekit.native import blas

SOURCES = tuple(Path(__file__).with_name(name) for name in ("gemm.c", "mlp.c", "train.c"))
HEADER = Path(__file__).with_name("kernels.h")
FLAGS = ("-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-fopenmp", "-fPIC")
DISABLE_VARIABLE = "VAEKIT_NO_NATIVE"
_FLOAT_P = ctypes.POINTER(ctypes.c_float)


DIR_VARIABLE = "VAEKIT_KERNEL_DIR"


def cache_dir() -> Path:
    """VAEKIT_KERNEL_DIR, else ~/.cache/vaekit/kernels (the tests share one per session)."""
    if os.environ.get(DIR_VARIABLE):
        return Path(os.environ[DIR_VARIABLE])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vaekit" / "kernels"


def compiler() -> str | None:
    """The C compiler: $CC, else cc or gcc on PATH; None when there is none."""
    for name in (os.environ.get("CC"), "cc", "gcc"):
        if name and shutil.which(name):
            return name
    return None


def _library_path(cc: str) -> Path:
    version = subprocess.run([cc, "--version"], capture_output=True, text=True, check=True)
    key = hashlib.sha256()
    sources = [path.read_bytes() for path in (*SOURCES, HEADER)]
    for part in (*sources, version.stdout.encode(), " ".join(FLAGS).encode()):
        key.update(part)
    return cache_dir() / f"mlp-{key.hexdigest()[:16]}.so"


def _build(cc: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        command = [cc, *FLAGS, "-shared", *map(str, SOURCES), "-o", tmp, "-lm"]
        subprocess.run(command, capture_output=True, text=True, check=True)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _declare(lib: ctypes.CDLL) -> ctypes.CDLL:
    c_int, c_ptr, c_double_p = ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_double)
    lib.vk_set_sgemm.argtypes = [c_ptr, c_int, c_int]
    lib.vk_gather.argtypes = [c_ptr, c_ptr, c_int, c_int, c_ptr]
    lib.vk_step.argtypes = [c_int, c_int, c_int, c_int, ctypes.c_float, c_int, ctypes.c_int64]
    lib.vk_step.argtypes += [c_ptr, c_double_p]
    lib.vk_elbo.argtypes = [c_int, c_int, c_int, c_int, c_ptr, c_double_p]
    lib.vk_softplus_rows.argtypes = [c_ptr, c_ptr, c_int, c_int, c_ptr]
    lib.vk_products.argtypes = [c_int, c_ptr, c_ptr, c_int]
    lib.vk_matmul_t.argtypes = [c_int, c_int, c_int, c_ptr, c_ptr, c_ptr]
    lib.vk_train.argtypes = [c_int, c_int, ctypes.c_int64, c_int, c_int, c_int]
    lib.vk_train.argtypes += [c_ptr] * 8
    lib.vk_adam.argtypes = [c_int, c_int, c_int, c_ptr, c_ptr, c_ptr]
    names = ("vk_set_sgemm", "vk_gather", "vk_step", "vk_elbo", "vk_softplus_rows")
    for name in (*names, "vk_products", "vk_matmul_t", "vk_train", "vk_adam"):
        getattr(lib, name).restype = None
    sgemm = blas.choose(cache_dir())
    lib.vk_set_sgemm(sgemm.address, int(sgemm.wide), int(sgemm.wide))
    lib.sgemm = sgemm
    return lib


@functools.cache
def load() -> ctypes.CDLL | None:
    """The compiled kernels, built on first use; None without a compiler (or when the
    build fails, or VAEKIT_NO_NATIVE is set), once per process."""
    if os.environ.get(DISABLE_VARIABLE) or not (cc := compiler()):
        return None
    try:
        path = _library_path(cc)
        if not path.exists():
            _build(cc, path)
        return _declare(ctypes.CDLL(str(path)))
    except (OSError, subprocess.CalledProcessError, AttributeError):
        return None


def available() -> bool:
    return load() is not None


def pointers(tensors: list[torch.Tensor]) -> ctypes.Array:
    """The data pointers of `tensors` as a C array of void* (what the kernels index)."""
    return (ctypes.c_void_p * len(tensors))(*(t.data_ptr() for t in tensors))


def matmul_t(lib: ctypes.CDLL | None, a: torch.Tensor, w: torch.Tensor, out: torch.Tensor) -> None:
    """out = a @ w.T for contiguous float32 a (M, K), w (N, K), out (M, N): through the
    kernels' sgemm when they are loaded (`lib`), else torch.mm."""
    if lib is None:
        torch.mm(a, w.t(), out=out)
        return
    assert a.is_contiguous() and w.is_contiguous() and out.is_contiguous()
    (m, k), n = a.shape, w.shape[0]
    lib.vk_matmul_t(m, n, k, a.data_ptr(), w.data_ptr(), out.data_ptr())
