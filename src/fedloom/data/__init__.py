"""Data: bundled and user datasets, partitioners."""

from fedloom.data.datasets import DATASETS, Dataset, load_dataset, load_file
from fedloom.data.partition import PARTITIONERS, label_histogram, partition

__all__ = ["DATASETS", "PARTITIONERS", "Dataset", "label_histogram", "load_dataset", "load_file", "partition"]
