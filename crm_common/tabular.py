"""Spreadsheet files read as a stream of rows: CSV in any common delimiter and encoding, and Excel .xlsx.

Memory stays flat whatever the size: CSV is decoded as it is read, and .xlsx goes through openpyxl's
read-only mode, which parses the sheet's XML incrementally. Rows are numbered as a spreadsheet shows
them (the header is row 1), so a report can name the row a person will look for.
"""
from __future__ import annotations

import codecs
import csv
import io
import zipfile
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Iterator

SAMPLE_BYTES = 256 * 1024
DELIMITERS = ",;\t|"
csv.field_size_limit(10 * 1024 * 1024)


class UnreadableFile(ValueError):
    """The file is not a CSV or .xlsx this reader can make sense of; the message says why."""


@dataclass(frozen=True)
class BadCell:
    """A cell whose value cannot be used as it is (an Excel formula or error, bytes in no known encoding)."""
    shown: str
    reason: str

    def __str__(self) -> str:
        return self.shown


Cell = str | int | float | datetime | date | BadCell | None


def is_xlsx(path: str) -> bool:
    return zipfile.is_zipfile(path)


def detect_encoding(sample: bytes) -> str:
    """UTF-8 (with or without BOM), UTF-16 with a BOM, else GB18030 (a superset of GBK, what Chinese Excel saves)."""
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    # A few bad bytes are reported row by row; a file mostly undecodable is refused whole. UTF-8 with stray
    # bytes still reads good multi-byte characters, while GBK read as UTF-8 forms one by chance for about ten
    # bad ones: that tells them apart (GB18030 decodes most UTF-8 Chinese without an error, so "no errors"
    # alone would pick it wrongly).
    limit = max(8, len(sample) // 1000)
    utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace").decode(sample, final=False)
    bad = utf8.count("\ufffd")
    good = sum(1 for ch in utf8 if ord(ch) > 127) - bad
    if bad == 0 or (bad <= limit and 2 * good >= bad):
        return "utf-8"
    gbk = codecs.getincrementaldecoder("gb18030")(errors="replace").decode(sample, final=False).count("\ufffd")
    if gbk < bad and gbk <= limit:
        return "gb18030"
    if bad <= limit:
        return "utf-8"
    raise UnreadableFile("the file is neither UTF-8 nor GBK/GB18030 text; save it as CSV UTF-8 or as .xlsx")


def detect_delimiter(text: str) -> str:
    try:
        return csv.Sniffer().sniff(text, delimiters=DELIMITERS).delimiter
    except csv.Error:
        header = text.split("\n", 1)[0]
        counts = {d: header.count(d) for d in DELIMITERS}
        best = max(counts, key=counts.get)
        return best if counts[best] else ","


class Table:
    """``Table(path)``: ``headers`` and ``rows()`` -> (row number, cells), blank rows skipped."""

    def __init__(self, path: str):
        self.path = path
        self.format = "xlsx" if is_xlsx(path) else "csv"
        if self.format == "csv":
            with open(path, "rb") as raw:
                if raw.read(4) == b"PK\x03\x04":
                    raise UnreadableFile("a damaged .xlsx (the zip is incomplete); save the workbook again")
            with open(path, "rb") as raw:
                sample = raw.read(SAMPLE_BYTES)
            if not sample.strip():
                raise UnreadableFile("the file is empty")
            self.encoding = detect_encoding(sample)
            text = sample.decode(self.encoding, errors="ignore")
            self.delimiter = detect_delimiter(text[:64 * 1024])
        else:
            self.encoding, self.delimiter = None, None
        first = next(self._raw_rows(), None)
        if first is None:
            raise UnreadableFile("the file has no header row")
        self.headers = [str(c).strip() if c is not None else "" for c in first[1]]

    def rows(self) -> Iterator[tuple[int, list[Cell]]]:
        rows = self._raw_rows()
        next(rows, None)
        for number, cells in rows:
            if any(c not in (None, "") and not (isinstance(c, str) and not c.strip()) for c in cells):
                yield number, cells

    def count(self) -> int:
        """Data rows, for a progress bar (a pass over the file; cheap next to importing it)."""
        return sum(1 for _ in self.rows())

    def _raw_rows(self) -> Iterator[tuple[int, list[Cell]]]:
        return self._xlsx_rows() if self.format == "xlsx" else self._csv_rows()

    def _csv_rows(self):
        # surrogateescape keeps a row with undecodable bytes readable, so that row alone is reported
        with open(self.path, encoding=self.encoding, errors="surrogateescape", newline="") as text:
            for number, record in enumerate(csv.reader(text, delimiter=self.delimiter), start=1):
                yield number, [_csv_cell(value, self.encoding) for value in record]

    def _xlsx_rows(self):
        try:
            from openpyxl import load_workbook
        except ImportError as exc:  # pragma: no cover - openpyxl is a dependency
            raise UnreadableFile(f"cannot read .xlsx here: {exc}") from None
        # a file object, not the path: openpyxl judges a path by its extension, and uploads have none
        with open(self.path, "rb") as handle:
            try:
                # not data_only: a formula's cached value may be stale or missing, so the formula is reported
                book = load_workbook(handle, read_only=True, data_only=False)
            except Exception as exc:  # openpyxl raises many kinds for a damaged or foreign zip
                raise UnreadableFile(f"not a readable .xlsx workbook ({exc.__class__.__name__}: {exc})") from None
            try:
                rows, number = iter(book.worksheets[0].iter_rows()), 0
                while True:
                    try:
                        row = next(rows)
                    except StopIteration:
                        return
                    except Exception as exc:  # the sheet's XML is damaged past this point
                        raise UnreadableFile(f"the workbook is damaged after row {number} ({exc.__class__.__name__});"
                                             " save it again in Excel") from None
                    number += 1
                    yield number, [_xlsx_cell(cell) for cell in row]
            finally:
                book.close()


def _csv_cell(value: str, encoding: str) -> Cell:
    if any("\udc80" <= ch <= "\udcff" for ch in value):
        shown = value.encode(encoding, errors="surrogateescape").decode(encoding, errors="replace")
        return BadCell(shown, f"bytes that are not {encoding} text; save the file as CSV UTF-8")
    return value


def _xlsx_cell(cell) -> Cell:
    kind = getattr(cell, "data_type", None)
    value = getattr(cell, "value", None)
    if kind == "f" or (isinstance(value, str) and value.startswith("=") and len(value) > 1 and kind != "s"):
        return BadCell(str(value), "a formula; paste the values instead (Paste Special > Values)")
    if kind == "e":
        return BadCell(str(value), f"an Excel error cell ({value})")
    if isinstance(value, time):
        return value.isoformat()
    return value


def csv_text(rows: list[list]) -> str:
    """Rows as CSV text (for reports a person opens in Excel: written UTF-8 with a BOM by the caller)."""
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue()
