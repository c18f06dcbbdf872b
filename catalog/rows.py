"""Reading and validating catalog files (CSV / JSON Lines). Pure Python, no Django.

Every row is validated before anything is written; errors carry the file's line number
(the CSV header is line 1, so the first product is row 2; in JSON Lines the first line is row 1).
"""

from __future__ import annotations

import contextlib
import csv
import functools
import gc
import io
import json
import operator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

PATH_SEPARATOR = " > "
REQUIRED_COLUMNS = ("external_id", "name", "category_path")
KNOWN_COLUMNS = frozenset({"external_id", "name", "brand", "description", "category_path", "size"})
EXPECTED_HEADER = "external_id,name,brand,description,category_path"
FILE_EXTENSIONS = (".csv", ".jsonl", ".ndjson")  # CSV, or JSON Lines
# The longest value each column may hold (catalog.models uses the same numbers for its columns).
MAX_LENGTHS = {"external_id": 200, "name": 500, "brand": 200, "size": 100}
MAX_LEVEL_LENGTH = 200  # one level of a category path (Category.name)
MAX_PATH_LENGTH = 1000  # the whole path, levels joined by " > " (Category.path)


class CatalogRow(NamedTuple):
    """One valid row of a file. A named tuple: a million of them are built per file, each in half the time a frozen
    dataclass takes (`_replace` gives a changed copy)."""

    row: int
    external_id: str
    name: str
    brand: str
    description: str
    size: str
    category_path: tuple[str, ...]
    attributes: dict  # the file's other columns with a value


@dataclass(frozen=True)
class RowError:
    row: int | None  # None: the error is about the whole file (header, encoding of the header)
    message: str

    def __str__(self):
        return f"row {self.row}: {self.message}" if self.row is not None else self.message


class CatalogFileError(Exception):
    """The file has bad rows; nothing was imported."""

    def __init__(self, errors: list[RowError]):
        self.errors = errors
        shown = "\n".join(str(e) for e in errors[:50])
        more = f"\n... and {len(errors) - 50} more" if len(errors) > 50 else ""
        super().__init__(f"{len(errors)} bad row(s), nothing imported:\n{shown}{more}")


@contextlib.contextmanager
def collector_paused():
    """Pause Python's cyclic garbage collector for the block (as it was before, after it). A catalog's rows hold
    no reference cycles, but each one stays alive while a file is read or imported: with the collector on, the
    allocations set off full collections over every object of the process (the rows, a worker's torch modules),
    a quarter of an import's time (docs/benchmarks.md, "Import")."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def split_path(value) -> tuple[str, ...]:
    if isinstance(value, (list, tuple)):
        return tuple(str(v).strip() for v in value)
    return tuple([level.strip() for level in str(value or "").split(">")])


def decode_file(raw: bytes) -> tuple[str | None, list[RowError]]:
    """The file as text (a BOM dropped), or None and a row error for every line that is not UTF-8."""
    try:
        return raw.decode("utf-8-sig"), []
    except UnicodeDecodeError:
        errors = []
        for number, line in enumerate(raw.split(b"\n"), start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                errors.append(RowError(number, f"not valid UTF-8 (byte {exc.start + 1}); save the file as UTF-8"))
        return None, errors


def _checked_path(raw) -> tuple[tuple[str, ...], str | None]:
    """The levels of a category_path cell, and what is wrong with them (None: nothing)."""
    path = split_path(raw)
    if not any(path):
        return path, "category_path is empty"
    if not all(path):
        return path, f"category_path {str(raw)!r} has an empty level"
    if max(len(level) for level in path) > MAX_LEVEL_LENGTH:
        return path, f"category_path has a level of over {MAX_LEVEL_LENGTH} characters"
    if len(PATH_SEPARATOR.join(path)) > MAX_PATH_LENGTH:
        return path, f"category_path is over {MAX_PATH_LENGTH} characters"
    return path, None


# A catalog names a few thousand paths over and over: each cell text is split and checked once.
_checked_text_path = functools.lru_cache(maxsize=8192)(_checked_path)


def _validate(row: int, cells: tuple, attributes: dict, seen: dict[str, int], allow_uncategorized: bool = False
              ) -> tuple[CatalogRow | None, list[RowError]]:
    """A row from its `cells` (external_id, name, brand, description, size: text; category_path: text or a list)
    and its other columns with a value (`attributes`), or its errors. `seen`: external_id -> row, of the rows before."""
    external_id, name, brand, description, size, raw_path = cells
    external_id, name, brand, size = external_id.strip(), name.strip(), brand.strip(), size.strip()
    path, path_problem = (_checked_text_path if isinstance(raw_path, str) else _checked_path)(raw_path)
    if allow_uncategorized and not any(path):
        path, path_problem = (), None  # an uncategorized product: the audit suggests its category
    errors = []
    if not external_id:
        errors.append(RowError(row, "external_id is empty"))
    elif external_id in seen:
        errors.append(RowError(row, f"external_id {external_id!r} duplicates row {seen[external_id]}"))
    else:
        seen[external_id] = row
    if not name:
        errors.append(RowError(row, "name is empty"))
    if path_problem:
        errors.append(RowError(row, path_problem))
    if (len(external_id) > MAX_LENGTHS["external_id"] or len(name) > MAX_LENGTHS["name"]
            or len(brand) > MAX_LENGTHS["brand"] or len(size) > MAX_LENGTHS["size"]):
        stripped = {"external_id": external_id, "name": name, "brand": brand, "size": size}
        errors += [RowError(row, f"{column} is over {limit} characters")
                   for column, limit in MAX_LENGTHS.items() if len(stripped[column]) > limit]
    if errors:
        return None, errors
    return CatalogRow(row, external_id, name, brand, description.strip(), size, path, attributes), []


def _nul_errors(row: int, items) -> list[RowError]:
    """A row error for each (column, value) of `items` holding a NUL character: PostgreSQL text and JSON cannot
    hold one (in JSON Lines it arrives as \\u0000)."""
    errors = []
    for key, value in items:
        if any("\x00" in text or "\\u0000" in text for text in (str(key), str(value))):
            shown = str(key).replace("\x00", "\\x00")  # the error itself is stored as text
            errors.append(RowError(row, f"{shown} holds a NUL character"))
    return errors


def csv_records(reader, width: int, errors: list[RowError]):
    """(line number, fields) of each CSV record after the header, blank lines skipped. A record of another width
    than `width` becomes a row error in `errors`; an unreadable one (a field over csv.field_size_limit(), say)
    too, and ends the reading: what follows it cannot be read reliably."""
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            errors.append(RowError(reader.line_num, f"unreadable CSV ({exc}); nothing after this row was read"))
            return
        if not fields or fields == [""]:
            continue
        if len(fields) != width:
            errors.append(RowError(reader.line_num, f"expected {width} fields, found {len(fields)}"))
            continue
        yield reader.line_num, fields


# The columns a row's cells come from, in `_validate`'s order.
CELL_COLUMNS = ("external_id", "name", "brand", "description", "size", "category_path")


def _read_csv(text: str, allow_uncategorized: bool = False) -> tuple[list[CatalogRow], list[RowError]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        return [], [RowError(None, "the file is empty")]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    duplicated = sorted({h for h in header if header.count(h) > 1})
    if missing or duplicated or "" in header:
        problems = []
        if missing:
            problems.append(f"missing column(s) {', '.join(missing)}")
        if duplicated:
            problems.append(f"duplicated column(s) {', '.join(duplicated)}")
        if "" in header:
            problems.append("an unnamed column")
        return [], [RowError(1, f"header has {'; '.join(problems)}; expected {EXPECTED_HEADER} (+ optional columns)")]
    # A row's cells by position: an optional column the file lacks reads the empty cell appended to every row.
    width = len(header)
    cells = operator.itemgetter(*(header.index(c) if c in header else width for c in CELL_COLUMNS))
    extra = [(i, h) for i, h in enumerate(header) if h not in KNOWN_COLUMNS]
    rows, errors, seen = [], [], {}
    # A cell is a stretch of the file less some quote characters: when the file, quotes dropped, holds
    # no NUL and no literal \u0000, no cell does, and the per-cell check is skipped.
    check_nul = "\x00" in text or "\\u0000" in text.replace('"', "")
    for number, fields in csv_records(reader, width, errors):
        nul = _nul_errors(number, zip(header, fields)) if check_nul else []
        fields.append("")
        parsed, row_errors = _validate(number, cells(fields), {h: fields[i] for i, h in extra if fields[i]}, seen,
                                       allow_uncategorized)
        errors += row_errors + nul
        if parsed and not nul:
            rows.append(parsed)
    return rows, errors


def _read_jsonl(text: str, allow_uncategorized: bool = False) -> tuple[list[CatalogRow], list[RowError]]:
    rows, errors, seen = [], [], {}
    # Only an escape can put a NUL, or the backslash of a literal \u0000, into a decoded value.
    check_nul = "\\" in text or "\x00" in text
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            values = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append(RowError(number, f"not valid JSON ({exc.msg})"))
            continue
        if not isinstance(values, dict):
            errors.append(RowError(number, "expected a JSON object"))
            continue
        missing = [c for c in REQUIRED_COLUMNS if c not in values]
        if missing:
            errors.append(RowError(number, f"missing key(s) {', '.join(missing)}"))
            continue
        values = {k: (json.dumps(v) if isinstance(v, (dict, list)) and k != "category_path" else v) for k, v in values.items()}
        nul = _nul_errors(number, values.items()) if check_nul else []
        texts = tuple(str(values.get(c) or "") for c in CELL_COLUMNS[:-1])
        attributes = {k: v for k, v in values.items() if k not in KNOWN_COLUMNS and v not in (None, "")}
        parsed, row_errors = _validate(number, (*texts, values.get("category_path")), attributes, seen,
                                       allow_uncategorized)
        errors += row_errors + nul
        if parsed and not nul:
            rows.append(parsed)
    return rows, errors


def read_catalog(path: str | Path, *, raw: bytes | None = None, allow_uncategorized: bool = False) -> list[CatalogRow]:
    """Parse and validate a whole catalog file; raise CatalogFileError listing every bad row. An empty
    category_path is a row error unless ``allow_uncategorized`` (the row's ``category_path`` is then ())."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FILE_EXTENSIONS:
        raise CatalogFileError([RowError(None, f"unsupported file type {suffix or '(none)'!r}: use .csv or .jsonl")])
    if raw is None:
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise CatalogFileError([RowError(None, f"file not found: {path}")]) from None
    text, errors = decode_file(raw)
    if errors:
        raise CatalogFileError(errors)
    with collector_paused():
        rows, errors = (_read_csv if suffix == ".csv" else _read_jsonl)(text, allow_uncategorized)
    if errors:
        raise CatalogFileError(errors)
    if not rows:
        raise CatalogFileError([RowError(None, "the file has no product rows")])
    return rows
