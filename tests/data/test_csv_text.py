"""CSV files as people have them: text labels, text group ids, errors that name the row and column."""

from __future__ import annotations

import numpy as np
import pytest

from fedloom.app.config import load_config
from fedloom.data.datasets import label_mapping, load_dataset, load_site_data
from fedloom.errors import ConfigError


def patients(tmp_path, rows: int = 60, *, bad: str | None = None):
    lines = ["age,bp,diagnosis,hospital"]
    for i in range(rows):
        lines.append(f"{30 + i % 40},{100 + i % 30},{'malignant' if i % 3 == 0 else 'benign'},"
                     f"{['st-mary', 'general', 'north'][i % 3]}")
    if bad is not None:
        lines[5] = bad
    path = tmp_path / "patients.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_text_labels_and_groups_are_encoded_and_the_mapping_kept(tmp_path):
    ds = load_dataset(str(patients(tmp_path)), target_column="diagnosis", group_column="hospital")
    assert ds.task == "classification" and ds.num_classes == 2 and ds.label_names == ["benign", "malignant"]
    assert ds.y_train.dtype == np.int64 and set(ds.y_train.tolist()) == {0, 1}
    assert set(ds.groups_train.tolist()) == {"st-mary", "general", "north"}
    assert label_mapping(ds) == {"labels": {"0": "benign", "1": "malignant"},
                                 "groups": {"0": "general", "1": "north", "2": "st-mary"}}


def test_a_shared_label_list_fixes_the_encoding_even_when_a_site_lacks_a_class(tmp_path):
    path = tmp_path / "site.csv"
    path.write_text("age,diagnosis\n1,benign\n2,benign\n3,benign\n")
    ds = load_site_data(path, target_column="diagnosis", labels=["malignant", "benign"])
    assert ds.num_classes == 2 and ds.y_train.tolist() == [1, 1, 1]  # benign is class 1 at every site
    with pytest.raises(ConfigError, match=r"site.csv, row 2: label 'benign' is not one of the configured labels"):
        load_site_data(path, target_column="diagnosis", labels=["malignant", "cyst"])
    with pytest.raises(ConfigError, match="set labels = \\[...\\]"):
        load_site_data(path, target_column="diagnosis")


@pytest.mark.parametrize(("bad", "message"), [
    ("abc,120,benign,north", r"row 6, column 'age' is 'abc', not a number"),
    (",120,benign,north", r"row 6, column 'age' is empty \(a missing value\)"),
    ("40,120,,north", r"row 6, column 'diagnosis': the label is empty"),
    ("40,120,benign", r"row 6: 3 values, but the header has 4 columns"),
    ("40,inf,benign,north", r"row 6, column 'bp' is 'inf': feature values must be finite"),
])
def test_errors_name_the_row_and_the_column(tmp_path, bad, message):
    with pytest.raises(ConfigError, match=message):
        load_dataset(str(patients(tmp_path, bad=bad)), target_column="diagnosis", group_column="hospital")


def test_group_column_implies_the_natural_partition_and_the_client_count(tmp_path):
    path = str(patients(tmp_path))
    cfg = load_config(None, {"dataset": path, "target_column": "diagnosis", "group_column": "hospital"})
    assert cfg.data.partition == "column" and cfg.federation.clients == 3
    given = load_config(None, {"dataset": path, "target_column": "diagnosis", "group_column": "hospital",
                               "clients": 2})
    assert given.federation.clients == 2  # given: kept (and the partition then says it does not fit)
    with pytest.raises(ConfigError, match="drop --partition"):
        load_config(None, {"dataset": path, "target_column": "diagnosis", "group_column": "hospital",
                           "partition": "iid"})


def test_labels_in_toml_may_be_a_list(tmp_path):
    toml = tmp_path / "exp.toml"
    toml.write_text('labels = ["benign", "malignant"]\n')
    assert load_config(toml).data.label_list == ["benign", "malignant"]
