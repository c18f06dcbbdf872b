"""CSV written for people to open in a spreadsheet: a text cell that a spreadsheet would run as a
formula (starting with = + - @, tab or carriage return) is prefixed with an apostrophe (OWASP's
advice against CSV injection). Every export of the project writes through ``ExportWriter``."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from typing import IO

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value):
    """The value as it should stand in an exported cell; numbers and other values pass unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class ExportWriter:
    """``csv.writer`` whose rows go through ``spreadsheet_safe``."""

    def __init__(self, handle: IO[str]):
        self._writer = csv.writer(handle)

    def writerow(self, row) -> None:
        self._writer.writerow([spreadsheet_safe(v) for v in row])


def csv_chunks(header: list[str], rows: Iterable, rows_per_chunk: int = 2000) -> Iterator[str]:
    """The CSV text of `header` and `rows` (through ``ExportWriter``), a few thousand rows at a time: a
    download streams without holding the whole file."""
    buffer = io.StringIO()
    writer = ExportWriter(buffer)
    writer.writerow(header)
    for n, row in enumerate(rows, start=1):
        writer.writerow(row)
        if n % rows_per_chunk == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
