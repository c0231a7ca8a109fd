"""Reading training data (CSV or JSON Lines) into columns for ``modelmon reference build``."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Set
from pathlib import Path

from monitor.reference.bins import ReferenceProfileError
from monitor.vocabulary import FeatureKind


def read_training_file(
    path: Path | str, kinds: Mapping[str, FeatureKind] | None = None
) -> dict[str, list[object]]:
    """Read training data into columns.

    ``.csv``: a header row, then one row per example; numeric cells become floats, empty
    cells None, anything else stays a string. Cells of the columns that ``kinds`` (usually the
    model's feature kinds) marks categorical always stay strings, so a code like ``01234``
    keeps its leading zero and matches the same code in live events. ``.jsonl``: one JSON
    object per line (blank lines skipped); values keep their JSON types; a nested
    ``"features"`` object is flattened into columns; a key absent from a line is None in that
    row. A value in a column ``kinds`` marks numeric that is not a number is refused naming the
    file line (``train.csv:6``), which is what an editor shows.
    """
    source = Path(path)
    suffix = source.suffix.lower()
    numeric = {name for name, kind in (kinds or {}).items() if kind == "numeric"}
    try:
        if suffix == ".csv":
            categorical = {name for name, kind in (kinds or {}).items() if kind == "categorical"}
            return _read_csv(source, categorical, numeric)
        if suffix in (".jsonl", ".ndjson"):
            return _read_jsonl(source, numeric)
    except OSError as exc:
        raise ReferenceProfileError(f"cannot read training file {source}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ReferenceProfileError(f"training file {source} is not UTF-8 text") from exc
    raise ReferenceProfileError(
        f"{source}: unsupported training file type {suffix!r}; use .csv or .jsonl"
    )


def _parse_text(cell: str) -> object:
    return cell if cell.strip() else None


def _parse_cell(cell: str) -> object:
    if not cell.strip():
        return None
    try:
        return float(cell)
    except ValueError:
        return cell


def _not_a_number(path: Path, line: int, column: str, value: object) -> ReferenceProfileError:
    return ReferenceProfileError(
        f"{path}:{line}: column {column!r} is numeric but holds {value!r}; fix the value, or "
        "make the feature categorical"
    )


def _is_number(value: object) -> bool:
    if value is None or isinstance(value, int | float):  # bool is an int: 1/0, as in events
        return True
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return False
        return True
    return False


def _read_csv(path: Path, categorical: Set[str], numeric: Set[str]) -> dict[str, list[object]]:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if not header:
            raise ReferenceProfileError(f"{path}: empty file; expected a header row")
        if len(set(header)) != len(header):
            raise ReferenceProfileError(f"{path}: duplicate column names in the header")
        columns: dict[str, list[object]] = {name: [] for name in header}
        targets = list(columns.values())
        parsers = [_parse_text if name in categorical else _parse_cell for name in header]
        checked = [(i, name) for i, name in enumerate(header) if name in numeric]
        for row in reader:
            if not row:
                continue
            if len(row) != len(header):
                raise ReferenceProfileError(
                    f"{path}:{reader.line_num}: expected {len(header)} fields, found {len(row)}"
                )
            for target, parse, cell in zip(targets, parsers, row, strict=True):
                target.append(parse(cell))
            for i, name in checked:
                if isinstance(targets[i][-1], str):
                    raise _not_a_number(path, reader.line_num, name, row[i])
    return columns


def _read_jsonl(path: Path, numeric: Set[str]) -> dict[str, list[object]]:
    records: list[dict[str, object]] = []
    names: dict[str, None] = {}  # ordered union of the keys seen
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ReferenceProfileError(f"{path}:{lineno}: invalid JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise ReferenceProfileError(f"{path}:{lineno}: expected a JSON object")
            nested = obj.pop("features", None)
            if nested is not None:
                if not isinstance(nested, dict):
                    raise ReferenceProfileError(f"{path}:{lineno}: 'features' must be an object")
                clash = sorted(obj.keys() & nested.keys())
                if clash:
                    raise ReferenceProfileError(
                        f"{path}:{lineno}: features {clash} clash with top-level keys"
                    )
                obj.update(nested)
            for name in numeric:
                if not _is_number(obj.get(name)):
                    raise _not_a_number(path, lineno, name, obj[name])
            records.append(obj)
            names.update(dict.fromkeys(obj))
    return {name: [record.get(name) for record in records] for name in names}
