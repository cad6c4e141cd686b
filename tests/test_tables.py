"""Tables and vectors: reading CSV and 2-D .npy files, the transform there and back,
the errors bad tables get, and the categorical and mixed likelihoods by hand."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from vaekit.config import DataConfig
from vaekit.data import load_data
from vaekit.data.tablefile import read_csv
from vaekit.errors import ConfigError, DataError
from vaekit.likelihoods import TableLayout, categorical_nll, get_likelihood

ROWS = [
    ("1.5", "10", "red", "a"),
    ("2.5", "12", "blue", "b"),
    ("-0.5", "11", "red", "a"),
    ("4.0", "15", "green", "b"),
    ("3.0", "10", "red", "a"),
    ("0.0", "13", "blue", "b"),
    ("2.0", "14", "green", "a"),
    ("1.0", "12", "red", "b"),
    ("5.5", "11", "blue", "a"),
    ("2.5", "16", "red", "b"),
]
HEADER = "x,count,colour,kind"


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def table(tmp_path: Path) -> Path:
    return write(tmp_path / "t.csv", [HEADER, *(",".join(row) for row in ROWS)])


def config(path: Path, **values) -> DataConfig:
    return DataConfig(dataset=f"csv:{path}", **{"test_fraction": 0.2, **values})


def test_columns_are_standardised_with_the_training_rows_and_come_back(table):
    train = load_data(config(table, label_column="kind"), "train")
    test = load_data(config(table, label_column="kind"), "test", transform=train.transform)
    transform = train.transform
    assert train.image_shape == (1, 1, 2 + 3) and len(train) == 8 and len(test) == 2
    assert [c.name for c in transform.columns] == ["x", "count", "colour"]
    assert transform.layout == (2, (3,)) and transform.label_names == ("a", "b")
    numeric = train.images[:, 0, 0, :2].double()
    torch.testing.assert_close(numeric.mean(0), torch.zeros(2, dtype=torch.float64))
    torch.testing.assert_close(numeric.std(0, correction=0), torch.ones(2, dtype=torch.float64))
    rows = torch.cat([train.rows, test.rows]).tolist()
    assert sorted(rows) == list(range(10))  # a fixed shuffle, every row once
    back = transform.decode(torch.cat([train.images, test.images]).reshape(10, -1).numpy())
    for i, row in enumerate(rows):
        x, count, colour, _ = ROWS[row]
        assert back["x"][i] == pytest.approx(float(x), abs=1e-5)
        assert back["count"][i] == int(count)  # a column of whole numbers stays whole
        assert back["colour"][i] == colour
    labels = [transform.label_names[c] for c in train.labels.tolist()]
    assert labels == [ROWS[r][3] for r in train.rows.tolist()]


def test_the_transform_survives_json(table):
    from vaekit.data import TableTransform

    transform = load_data(config(table, label_column="kind"), "train").transform
    assert TableTransform.from_dict(transform.to_dict()) == transform


def test_quoted_and_unquoted_files_read_the_same(table, tmp_path):
    quoted = write(tmp_path / "q.csv", [HEADER, *(",".join(f'"{v}"' for v in row) for row in ROWS)])
    plain, slow = read_csv(table, {"kind"}), read_csv(quoted, {"kind"})
    assert plain.names == slow.names
    for name in plain.names:
        assert np.array_equal(plain.columns[name], slow.columns[name])
    assert plain.lines.tolist() == slow.lines.tolist() == list(range(2, 12))


def test_named_columns_are_categorical_and_classes_filter_training(table):
    data = config(table, categorical="count", label_column="kind", classes="a")
    train = load_data(data, "train")
    kinds = {c.name: c.kind for c in train.transform.columns}
    assert kinds == {"x": "numeric", "count": "categorical", "colour": "categorical"}
    assert set(train.labels.tolist()) == {0}  # "a" only
    # the statistics are the training rows of class a's
    xs = [float(ROWS[r][0]) for r in train.rows.tolist()]
    assert train.transform.columns[0].mean == pytest.approx(np.mean(xs))


@pytest.mark.parametrize(
    ("lines", "words"),
    [
        ([HEADER, "1,2,red,a", "3,4,blue"], "line 3: 3 fields, but the header names 4"),
        ([HEADER, "1,2,red,a", '"3",4,"blue"'], "line 3: 3 fields, but the header names 4"),
        ([HEADER, *[f"{i},{i},red,a" for i in range(9)], "oops,1,red,a"], "line 11, column 'x'"),
        ([HEADER, "1,2,red,a", "nan,3,blue,b", "2,5,red,b"], "line 3, column 'x': no finite"),
        ([HEADER, "1,2,red,a", ",3,blue,b", "2,5,red,b"], "line 3, column 'x': an empty cell"),
        ([HEADER, "1,2,red,a"], "1 training row(s); a table needs at least 2"),
        ([HEADER, "1,2,red,a", "1,3,blue,b", "1,5,red,b"], "column 'x' is constant"),
        ([HEADER, "1,2,red,a", "2,3,red,b", "3,5,red,b"], "column 'colour' has one category"),
        ([HEADER], "no data rows"),
        (["", "1,2"], "no header row"),
        (["x,x", "1,2", "3,4"], "column 'x' is named twice"),
    ],
)
def test_bad_tables_are_one_line_errors_naming_the_cell(tmp_path, lines, words):
    path = write(tmp_path / "bad.csv", lines)
    with pytest.raises(DataError) as caught:
        load_data(config(path, label_column="kind" if "kind" in lines[0] else None), "all")
    message = str(caught.value)
    assert words in message and "\n" not in message, message
    assert str(path) in message


def test_text_in_a_numeric_column_says_how_to_fix_it(tmp_path):
    lines = [HEADER, *[f"{i},{i % 3},red,a" for i in range(9)], "1,seven,blue,b"]
    with pytest.raises(DataError, match=r"line 11, column 'count': 'seven' is not a number.*"):
        load_data(config(write(tmp_path / "t.csv", lines)), "train")


def test_impute_mean_fills_numbers_with_the_training_mean_and_categories_with_the_mode(tmp_path):
    lines = ["x,colour", "1,red", "NA,red", "3,", "5,blue", "7,red", "9,blue"]
    path = write(tmp_path / "t.csv", lines)
    data = config(path, impute="mean")
    train = load_data(data, "all")  # fitted on the training rows, applied to all
    _, colour = train.transform.columns
    filled = train.images.reshape(len(train), -1)[[1, 2]]
    assert filled[0, 0].item() == pytest.approx(0.0)  # the mean, standardised
    assert colour.fill == "red" and filled[1, 1:].tolist() == [0.0, 1.0]  # blue, red


def test_new_data_meets_the_training_transform(table, tmp_path):
    train = load_data(config(table, label_column="kind"), "train")
    new = write(tmp_path / "new.csv", ["colour,x,count", "blue,2.5,12"])  # other order, no label
    again = load_data(config(new, label_column="kind"), "all", transform=train.transform)
    expected = load_data(config(table, label_column="kind"), "all", transform=train.transform)
    torch.testing.assert_close(again.images[0], expected.images[1])
    unknown = write(tmp_path / "u.csv", ["x,count,colour", "1,2,purple"])
    with pytest.raises(DataError, match=r"line 2, column 'colour': category 'purple' was not"):
        load_data(config(unknown), "all", transform=train.transform)
    with pytest.raises(DataError, match="has no column 'count'"):
        missing = write(tmp_path / "m.csv", ["x,colour", "1,red"])
        load_data(config(missing), "all", transform=train.transform)


def test_a_2d_npy_array_is_vectors(tmp_path):
    array = np.random.default_rng(0).normal(3, 2, size=(50, 4)).astype(np.float32)
    np.save(tmp_path / "v.npy", array)
    data = DataConfig(dataset=f"npy:{tmp_path / 'v.npy'}")
    train = load_data(data, "train")
    test = load_data(data, "test", transform=train.transform)
    assert train.image_shape == (1, 1, 4) and len(test) == 5
    assert test.rows.tolist() == list(range(45, 50))  # the last rows, as for image arrays
    back = train.transform.decode(train.images.reshape(45, 4).numpy())
    np.testing.assert_allclose(back["x2"], array[:45, 2], rtol=1e-5)
    array[7, 1] = np.inf
    np.save(tmp_path / "v.npy", array)
    with pytest.raises(DataError, match=r"v.npy, row 7, column 'x1': no finite value"):
        load_data(data, "train")


def test_categorical_nll_against_a_hand_computation():
    logits = torch.tensor([[0.5, -1.0, 2.0, 0.0, 1.0]])  # blocks of 3 and 2
    x = torch.tensor([[0.0, 0.0, 1.0, 1.0, 0.0]])
    first = -(2.0 - math.log(math.exp(0.5) + math.exp(-1.0) + math.exp(2.0)))
    second = -(0.0 - math.log(math.exp(0.0) + math.exp(1.0)))
    got = categorical_nll(logits, x, (3, 2))
    assert got.item() == pytest.approx(first + second, rel=1e-6)


def test_mixed_nll_mean_and_sample_by_hand():
    layout = TableLayout(1, (2,))
    likelihood = get_likelihood("mixed", 0.1, layout)
    mean = torch.tensor([0.3, 1.0, -1.0])
    raw = torch.tensor([0.2, 5.0, 5.0])  # the categorical entries' variances are unused
    params = torch.stack([mean, raw])[None, :, None, :]  # (1, 2, 1, 3)
    x = torch.tensor([1.0, 0.0, 1.0])[None, None, None, :]
    logvar = 2 * math.log(0.1) + math.log1p(math.exp(0.2))
    gauss = 0.5 * (math.log(2 * math.pi) + logvar + (1.0 - 0.3) ** 2 / math.exp(logvar))
    cat = -(-1.0 - math.log(math.exp(1.0) + math.exp(-1.0)))
    assert likelihood.nll(params, x).item() == pytest.approx(gauss + cat, rel=1e-6)
    shown = likelihood.mean(params)[0, 0, 0]
    assert shown[0].item() == pytest.approx(0.3) and shown[1:].sum().item() == pytest.approx(1)
    drawn = likelihood.sample(params.expand(200, -1, -1, -1), torch.Generator().manual_seed(0))
    assert drawn.shape == (200, 1, 1, 3) and set(drawn[..., 1:].sum(-1).flatten().tolist()) == {1}


def test_likelihoods_and_data_kinds_must_agree():
    with pytest.raises(ConfigError, match="--likelihood mixed is for tables"):
        get_likelihood("mixed", 0.1)
    with pytest.raises(ConfigError, match="tables and vectors need --likelihood mixed"):
        get_likelihood("bernoulli", 0.1, TableLayout(2))


@pytest.mark.parametrize(
    ("name", "extra"), [("mlp", {}), ("iwae-1l", {}), ("iwae-2l", {}), ("hvae", {"groups": 2})]
)
def test_the_flattening_families_take_vectors(name, extra):
    from vaekit.config import model_config
    from vaekit.models import build_model
    from vaekit.objectives import training_terms

    model = build_model(model_config(name, likelihood="mixed", **extra), (1, 1, 7), (4, (3,)))
    x = torch.cat([torch.randn(5, 4), torch.eye(3)[[0, 1, 2, 0, 1]]], dim=1)[:, None, None]
    out = model(x)
    assert out.params.shape == (5, 2, 1, 7)
    assert torch.isfinite(training_terms(x, out, model.likelihood.nll)["objective"])
