"""The sgemm the fast kernels call: PyTorch's own BLAS or numpy's OpenBLAS, the faster.

Why a choice: PyTorch's x86 wheels multiply with MKL, which on AMD CPUs runs its AVX2
code even where the CPU has AVX-512; on the 2-core AMD EPYC (Zen 5) that is about 85
GFLOP/s a core, against about 160 for OpenBLAS's AVX-512 ("SkylakeX") kernels. numpy
ships OpenBLAS (ILP64, symbols suffixed `64_`), but its runtime dispatch does not know
that CPU and settles on its Haswell (AVX2) kernels; a private copy of the library,
loaded with OPENBLAS_CORETYPE set, takes the AVX-512 ones. The copy runs single-threaded:
the C kernels split each large product over OpenMP's threads themselves, because
OpenBLAS's own thread pool and OpenMP's spin against each other on a small machine (an
epoch 20 times slower). Which sgemm the kernels call is measured once per machine
(`choose`) and remembered beside the compiled kernels.

VAEKIT_SGEMM=torch or VAEKIT_SGEMM=openblas overrides the measurement.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

CHOICE_VARIABLE = "VAEKIT_SGEMM"
AVX512 = ("avx512f", "avx512dq", "avx512bw", "avx512vl", "avx512cd")


@dataclass(frozen=True)
class Sgemm:
    """One BLAS's sgemm: a name, its address, and whether its integers are 64-bit."""

    name: str
    address: int
    wide: bool


def torch_sgemm() -> Sgemm:
    """The BLAS sgemm_ inside PyTorch's own library (MKL on x86 wheels)."""
    lib = ctypes.CDLL(str(Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"))
    return Sgemm("torch", ctypes.cast(lib.sgemm_, ctypes.c_void_p).value, wide=False)


def _cpuinfo_lines() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def _cpu_flags() -> set[str]:
    line = next((line for line in _cpuinfo_lines() if line.startswith("flags")), "flags:")
    return set(line.split(":", 1)[1].split())


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """PyTorch's (and so MKL's) thread count set for a block, then restored."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _numpy_openblas() -> Path | None:
    libs = Path(np.__file__).parent.parent / "numpy.libs"
    found = sorted(libs.glob("libscipy_openblas64_*.so*"))
    return found[0] if found else None


def _private_copy(source: Path, directory: Path, core: str | None) -> ctypes.CDLL:
    """A copy of numpy's OpenBLAS under another name (the loader would hand back numpy's
    own instance for the same file, and with it numpy's thread count), initialised with
    OPENBLAS_CORETYPE=core (None: its own dispatch)."""
    target = directory / f"openblas-{source.stat().st_size}-{source.name}"
    if not target.exists():
        directory.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{target.name}.tmp{os.getpid()}")
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    before = os.environ.get("OPENBLAS_CORETYPE")
    if core:
        os.environ["OPENBLAS_CORETYPE"] = core
    try:
        lib = ctypes.CDLL(str(target))
    finally:
        if before is None:
            os.environ.pop("OPENBLAS_CORETYPE", None)
        else:
            os.environ["OPENBLAS_CORETYPE"] = before
    lib.scipy_openblas_get_corename64_.restype = ctypes.c_char_p
    lib.scipy_openblas_set_num_threads64_.argtypes = [ctypes.c_int]
    lib.scipy_openblas_set_num_threads64_.restype = None
    return lib


def openblas_sgemm(directory: Path) -> Sgemm | None:
    """The private, single-threaded OpenBLAS, with its AVX-512 kernels where the CPU has
    them; None when numpy ships no OpenBLAS or it cannot be loaded."""
    source = _numpy_openblas()
    if source is None:
        return None
    try:
        core = "SkylakeX" if set(AVX512) <= _cpu_flags() else None
        lib = _private_copy(source, directory, core)
        lib.scipy_openblas_set_num_threads64_(1)
        name = lib.scipy_openblas_get_corename64_().decode()
        address = ctypes.cast(lib.scipy_sgemm_64_, ctypes.c_void_p).value
    except (OSError, AttributeError):
        return None
    return Sgemm(f"openblas-{name}", address, wide=True)


def _timing(sgemm: Sgemm, rounds: int = 5, calls: int = 10) -> float:
    """Seconds of ten of the seed model's largest product (128 x 784 x 400), best of
    `rounds`, on the calling thread."""
    kind = ctypes.c_int64 if sgemm.wide else ctypes.c_int
    ref, floats = ctypes.POINTER(kind), ctypes.POINTER(ctypes.c_float)
    signature = [ctypes.c_char_p] * 2 + [ref] * 3 + [floats]
    signature += [ctypes.c_void_p, ref] * 2 + [floats, ctypes.c_void_p, ref]
    call = ctypes.CFUNCTYPE(None, *signature)(sgemm.address)
    m, k, n = 128, 784, 400
    a, b, c = (np.ones(shape, np.float32) for shape in ((m, k), (k, n), (m, n)))
    ints = [ctypes.byref(kind(v)) for v in (n, m, k, n, k, n)]
    one, zero = ctypes.byref(ctypes.c_float(1)), ctypes.byref(ctypes.c_float(0))
    args = (b"N", b"N", *ints[:3], one, b.ctypes.data, ints[3], a.ctypes.data, ints[4])
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(calls):
            call(*args, zero, c.ctypes.data, ints[5])
        best = min(best, time.perf_counter() - started)
    return best


def _machine_key() -> str:
    """What the choice depends on: the CPU, its flags and the two libraries."""
    lines = _cpuinfo_lines()
    model = next((line for line in lines if line.startswith("model name")), "unknown")
    parts = [model, " ".join(sorted(_cpu_flags())), torch.__version__, str(_numpy_openblas())]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _recorded(record: Path) -> str | None:
    try:
        return json.loads(record.read_text())["choice"]
    except (OSError, ValueError, KeyError):
        return None


@contextlib.contextmanager
def _measuring_lock(directory: Path) -> Iterator[None]:
    """One process measures at a time: two measuring at once under load could choose
    differently, and a run and its resumed copy must multiply alike."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        handle = open(directory / "sgemm.lock", "a")  # noqa: SIM115 (held across the yield)
    except OSError:  # an unwritable folder: measured without the lock, as before
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _measured_choice(directory: Path, openblas: Sgemm) -> str:
    """'openblas' when it runs the product at least 10 % faster than PyTorch's BLAS on
    one thread, else 'torch'; measured once, then read back from `directory`."""
    record = directory / f"sgemm-{_machine_key()}.json"
    chosen = _recorded(record)
    if chosen is not None:
        return chosen
    with _measuring_lock(directory):
        chosen = _recorded(record)  # measured by another process while this one waited
        if chosen is not None:
            return chosen
        with torch_threads(1):
            seconds = {"torch": _timing(torch_sgemm()), "openblas": _timing(openblas)}
        chosen = "openblas" if seconds["openblas"] < 0.9 * seconds["torch"] else "torch"
        tmp = record.with_name(f"{record.name}.tmp{os.getpid()}")
        facts = {"choice": chosen, "seconds": seconds, "openblas": openblas.name}
        try:
            tmp.write_text(json.dumps(facts))
            os.replace(tmp, record)
        except OSError:  # a folder that cannot be written: measured again by the next process
            pass
    return chosen


def choose(directory: Path) -> Sgemm:
    """The sgemm for this machine: VAEKIT_SGEMM's, else the measured faster one, the same
    for every run on the machine (a resumed one too), so that they multiply alike."""
    forced = os.environ.get(CHOICE_VARIABLE, "")
    openblas = None if forced == "torch" else openblas_sgemm(directory)
    if openblas is None:
        return torch_sgemm()
    if forced == "openblas" or _measured_choice(directory, openblas) == "openblas":
        return openblas
    return torch_sgemm()
