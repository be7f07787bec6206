"""Read a CSV dataset as people have it: numeric features, a label column and an optional group
column whose values may be numbers or text, with errors that name the row and the column.

Row numbers in messages are the file's line numbers (the header is row 1).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from fedloom.errors import ConfigError

__all__ = ["read_csv", "csv_column"]


def _header(path: Path, reader: csv.reader, wanted: dict[str, str | None]) -> list[str]:  # type: ignore[valid-type]
    row = next(reader, None)
    if row is None:
        raise ConfigError(f"{path} is empty: a CSV dataset needs a header row and data rows")
    header = [h.strip() for h in row]
    for what, name in wanted.items():
        if name is not None and name not in header:
            raise ConfigError(f"{path} has no {what} column {name!r}; its columns are {header}")
    return header


def _column(values: list[str]) -> np.ndarray:
    """Numbers if every value is one, else text."""
    try:
        return np.array([float(v) for v in values], dtype=np.float64)
    except ValueError:
        return np.array(values, dtype=str)


def read_csv(path: str | Path, *, target: str, group: str | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(features float32, targets, groups or None)`` of a CSV file with a header row.

    Targets and groups are float64 when every value is a number, else strings. Every other
    column is a feature and must be a finite number in every row.

    Raises:
        ConfigError: a missing column, a row with the wrong number of values, an empty label or
            group, or a feature value that is not a finite number (the message names the row and
            the column).
    """
    path = Path(path)
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = _header(path, reader, {"target": target, "group": group})
        t_idx = header.index(target)
        g_idx = header.index(group) if group is not None else None
        keep = [i for i in range(len(header)) if i not in (t_idx, g_idx)]
        if not keep:
            raise ConfigError(f"{path} has no feature columns besides {target!r}")
        features: list[list[float]] = []
        targets: list[str] = []
        groups: list[str] = []
        for row_no, row in enumerate(reader, start=2):
            if len(row) != len(header):
                raise ConfigError(f"{path}, row {row_no}: {len(row)} values, but the header has {len(header)} "
                                  "columns")
            values = []
            for i in keep:
                cell = row[i].strip()
                try:
                    value = float(cell)
                except ValueError:
                    what = "is empty (a missing value)" if not cell else f"is {cell!r}, not a number"
                    raise ConfigError(
                        f"{path}, row {row_no}, column {header[i]!r} {what}: feature columns must be numbers "
                        f"(the label column is {target!r}" + (f", the group column {group!r}" if group else "")
                        + "; fill or drop missing values first)") from None
                if not math.isfinite(value):
                    raise ConfigError(f"{path}, row {row_no}, column {header[i]!r} is {cell!r}: feature values "
                                      "must be finite numbers")
                values.append(value)
            label = row[t_idx].strip()
            if not label:
                raise ConfigError(f"{path}, row {row_no}, column {target!r}: the label is empty")
            features.append(values)
            targets.append(label)
            if g_idx is not None:
                gid = row[g_idx].strip()
                if not gid:
                    raise ConfigError(f"{path}, row {row_no}, column {group!r}: the group id is empty")
                groups.append(gid)
    if not features:
        raise ConfigError(f"{path} has a header but no data rows")
    x = np.asarray(features, dtype=np.float32)
    return x, _column(targets), (_column(groups) if g_idx is not None else None)


def csv_column(path: str | Path, column: str) -> np.ndarray:
    """The values of one column (numbers if every value is one, else text), e.g. to count groups."""
    path = Path(path)
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = _header(path, reader, {"": column})
        idx = header.index(column)
        values = [row[idx].strip() for row in reader if len(row) > idx]
    return _column(values)
