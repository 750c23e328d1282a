"""CSV that a spreadsheet opens as data, never as formulas (CSV / formula injection).

Office, user and interpreter names reach the exports as typed by whoever created them; a cell
starting with `=`, `+`, `-`, `@`, a tab or a carriage return is a formula to Excel and
LibreOffice (`=HYPERLINK(…)`, `=cmd|…`, DDE). Every CSV writer of the service goes through
`SafeDictWriter`, which neutralises such a text cell the OWASP way: a leading `'`, shown by
the spreadsheet as text and visible to anyone reading the file. Numbers stay numbers: ints and
floats are never touched, nor is text that is just a number (`-12`, `+3.5`).

Columns that are machine-readable by design (base64url signatures and keys, whose alphabet
has `-` but cannot build a formula) can be listed in `verbatim` so that they stay byte-exact.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Collection, Iterable, Mapping
from typing import Any

# OWASP "CSV Injection": the characters that start a formula or DDE payload.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def safe_cell(value: Any) -> Any:
    """The value as written to a CSV cell: text starting a formula gets a leading `'`."""
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        if _NUMBER.fullmatch(value):
            return value
        return "'" + value
    return value


def safe_row(row: Mapping[str, Any], verbatim: Collection[str] = ()) -> dict[str, Any]:
    """`row` with every cell but the `verbatim` columns passed through `safe_cell`."""
    return {key: value if key in verbatim else safe_cell(value) for key, value in row.items()}


class SafeDictWriter(csv.DictWriter):
    """`csv.DictWriter` whose rows are neutralised by `safe_row` (the header is ours)."""

    def __init__(self, f: Any, fieldnames: Iterable[str], *args: Any, **kwargs: Any) -> None:
        self.verbatim: frozenset[str] = frozenset(kwargs.pop("verbatim", ()))
        super().__init__(f, list(fieldnames), *args, **kwargs)

    def writerow(self, rowdict: Mapping[str, Any]) -> Any:
        return super().writerow(safe_row(rowdict, self.verbatim))

    def writerows(self, rowdicts: Iterable[Mapping[str, Any]]) -> None:
        for row in rowdicts:
            self.writerow(row)
