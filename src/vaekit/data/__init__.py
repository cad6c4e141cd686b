"""Datasets: IDX files read and verified (idx), found or fetched (sources), procedural
sprites with factor labels (sprites), the user's own images (userdata) and tables
(tablefile, tables), label filters (classes), held in memory and batched (splits)."""

from vaekit.data import sprites
from vaekit.data.idx import FileSpec, gunzip, parse_idx, read_bytes, read_idx, verify
from vaekit.data.sources import (
    DATASETS,
    DatasetSpec,
    cache_dir,
    candidate_dirs,
    class_names,
    fetch,
    find_files,
    missing_message,
)
from vaekit.data.splits import (
    BINARIZE,
    VALIDATION,
    Split,
    binarize_images,
    check_dataset_name,
    epoch_order,
    evaluation_images,
    iterate_batches,
    load_data,
    load_split,
    make_split,
    model_input,
    only_classes,
    static_binarize,
    to_unit,
)
from vaekit.data.tables import TableTransform, is_table

__all__ = [
    "BINARIZE",
    "DATASETS",
    "VALIDATION",
    "DatasetSpec",
    "FileSpec",
    "Split",
    "TableTransform",
    "binarize_images",
    "cache_dir",
    "candidate_dirs",
    "check_dataset_name",
    "class_names",
    "epoch_order",
    "evaluation_images",
    "fetch",
    "find_files",
    "gunzip",
    "is_table",
    "iterate_batches",
    "load_data",
    "load_split",
    "make_split",
    "missing_message",
    "model_input",
    "only_classes",
    "parse_idx",
    "read_bytes",
    "read_idx",
    "sprites",
    "static_binarize",
    "to_unit",
    "verify",
]
