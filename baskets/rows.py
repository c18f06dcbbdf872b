"""Reading and validating a basket file (CSV). Pure Python, no Django.

`order_id,external_id,add_to_cart_order[,reordered]`, one line per product in an order. Every line is
checked before anything is written; errors carry the file's line number (the header is line 1) and use
the catalog import's `RowError` / `CatalogFileError` shape. The valid lines come back as columns of
machine integers (a 1.4M-line file is ~40 MB that way, not the ~300 MB of one object a line).
"""

from __future__ import annotations

import csv
import io
from array import array
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from catalog.rows import CatalogFileError, RowError, csv_records, decode_file

REQUIRED_COLUMNS = ("order_id", "external_id", "add_to_cart_order")
OPTIONAL_COLUMNS = ("reordered",)
EXPECTED_HEADER = "order_id,external_id,add_to_cart_order,reordered"
MAX_ORDER_ID = 2**63 - 1  # bigint
MAX_POSITION = 2**31 - 1  # integer
REORDERED = {"0": 0, "1": 1}
NO_REORDERED = -1  # the file has no reordered column: stored as unknown (NULL)


class BasketFileError(CatalogFileError):
    """The basket file has bad lines; nothing was imported."""


@dataclass
class BasketLines:
    """The valid lines of a file, as parallel columns (line numbers from the file)."""

    line: array = field(default_factory=lambda: array("q"))
    order_id: array = field(default_factory=lambda: array("q"))
    product_id: array = field(default_factory=lambda: array("q"))
    position: array = field(default_factory=lambda: array("q"))
    reordered: array = field(default_factory=lambda: array("b"))  # 0, 1 or NO_REORDERED

    def __len__(self) -> int:
        return len(self.line)


def _whole_number(text: str, largest: int, smallest: int) -> int | None:
    """The value of a plain decimal cell within [smallest, largest], else None. int() alone would take
    ' 7', '+7', '1_000' and non-ASCII digits."""
    if not (text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if smallest <= value <= largest else None


def read_baskets(path: str | Path, *, product_ids: Mapping[str, int]) -> tuple[BasketLines, list[RowError]]:
    """Parse and check a whole basket file against the catalog's `{external_id: product id}`.

    Returns the valid lines and the errors of the others (missing or extra fields, an order id or a
    position that is not a whole number, a reordered flag that is not 0 or 1, an unknown product).
    A bad header or an unreadable file raises BasketFileError at once. Lines repeating a product or a
    position within an order are found by the caller, on the staged lines (baskets.services)."""
    path = Path(path)
    if path.suffix.lower() != ".csv":
        raise BasketFileError([RowError(None, f"unsupported file type {path.suffix or '(none)'!r}: use .csv")])
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise BasketFileError([RowError(None, f"file not found: {path}")]) from None
    text, errors = decode_file(raw)
    if errors:
        raise BasketFileError(errors)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise BasketFileError([RowError(None, "the file is empty")]) from None
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    unknown = [c for c in header if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    duplicated = sorted({h for h in header if header.count(h) > 1})
    if missing or unknown or duplicated:
        problems = [f"{what} column(s) {', '.join(columns)}" for what, columns in
                    (("missing", missing), ("unknown", unknown), ("duplicated", duplicated)) if columns]
        raise BasketFileError([RowError(1, f"header has {'; '.join(problems)}; expected {EXPECTED_HEADER} "
                                           "(reordered optional)")])
    width = len(header)
    at_order, at_product, at_position = (header.index(c) for c in REQUIRED_COLUMNS)
    at_reordered = header.index("reordered") if "reordered" in header else None
    lines = BasketLines()
    for number, fields in csv_records(reader, width, errors):
        problems = []
        order_id = _whole_number(fields[at_order].strip(), MAX_ORDER_ID, 0)
        if order_id is None:
            problems.append(f"order_id {fields[at_order]!r} is not a whole number")
        position = _whole_number(fields[at_position].strip(), MAX_POSITION, 1)
        if position is None:
            problems.append(f"add_to_cart_order {fields[at_position]!r} is not a whole number from 1")
        reordered = NO_REORDERED
        if at_reordered is not None:
            reordered = REORDERED.get(fields[at_reordered].strip())
            if reordered is None:
                problems.append(f"reordered {fields[at_reordered]!r} is not 0 or 1")
        external_id = fields[at_product].strip()
        product_id = product_ids.get(external_id)
        if not external_id:
            problems.append("external_id is empty")
        elif product_id is None:
            shown = external_id if len(external_id) <= 60 else external_id[:60] + "…"
            problems.append(f"unknown product {shown!r} (not in the catalog: import it with manage.py import_catalog)")
        if problems:
            errors.extend(RowError(number, problem) for problem in problems)
            continue
        lines.line.append(number)
        lines.order_id.append(order_id)
        lines.product_id.append(product_id)
        lines.position.append(position)
        lines.reordered.append(reordered)
    if not errors and not lines:
        errors.append(RowError(None, "the file has no basket lines"))
    return lines, errors
