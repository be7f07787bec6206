"""The data section of a run: which dataset, how it is split over clients and held out."""

from __future__ import annotations

from dataclasses import dataclass

from fedloom.core.options import need, option
from fedloom.data.registry import DATASETS, PARTITIONERS

__all__ = ["DataOptions"]


@dataclass
class DataOptions:
    """``[data]``: the dataset and its partition over clients."""

    dataset: str = option("digits", "Bundled dataset or a path to a .csv/.npz file.", choices=lambda: DATASETS)
    target_column: str = option("target", "Label column of a CSV dataset.")
    group_column: str = option("", "Natural partition column of a CSV dataset (numbers or text, e.g. a hospital "
                               "id): one client per group (implies --partition column and, unless --clients is "
                               "given, as many clients as groups).")
    labels: str = option("", "Class names in class-index order, comma-separated (TOML: a list), e.g. "
                         "benign,malignant: every file's labels are encoded by this list, so every site of a "
                         "deployment agrees (default: the dataset's sorted distinct labels).")
    test_fraction: float = option(0.2, "Fraction of the data held by the server for central evaluation.")
    client_test_fraction: float = option(0.2, "Fraction of each client's data kept for federated evaluation.")
    partition: str = option("dirichlet", "How data is split over clients.", choices=lambda: PARTITIONERS)
    alpha: float = option(0.5, "Dirichlet concentration for dirichlet/quantity (smaller = more skew).")
    shards_per_client: int = option(2, "Shards per client for --partition shards.")

    def __post_init__(self) -> None:
        if self.group_column and self.partition == "dirichlet":  # the default: a group column means its groups
            self.partition = "column"

    def validate(self) -> None:
        """Raise :class:`~fedloom.errors.ConfigError` for an invalid value."""
        need(self.dataset in DATASETS or self.dataset.endswith((".csv", ".npz")),
             f"unknown dataset {self.dataset!r}; choose one of: {DATASETS.choices()}, or a .csv/.npz path")
        PARTITIONERS.get(self.partition)
        need(self.alpha > 0, f"alpha must be > 0, got {self.alpha}")
        need(self.shards_per_client >= 1, f"shards_per_client must be >= 1, got {self.shards_per_client}")
        need(0.0 < self.test_fraction < 1.0, f"test_fraction must be in (0, 1), got {self.test_fraction}")
        need(len(set(self.label_list)) == len(self.label_list), f"labels must be distinct, got {self.labels!r}")
        need(not self.group_column or self.partition == "column",
             f"--group-column {self.group_column!r} makes one client per group (partition 'column'), but partition "
             f"is {self.partition!r}: drop --partition (or --group-column)")
        need(0.0 <= self.client_test_fraction < 1.0,
             f"client_test_fraction must be in [0, 1), got {self.client_test_fraction}")

    @property
    def label_list(self) -> list[str]:
        """:attr:`labels` as a list (empty: the dataset's own sorted labels)."""
        return [name.strip() for name in self.labels.split(",") if name.strip()]
