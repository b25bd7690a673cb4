"""Streaming writers for the raw exports and the truth files.

Every department file is opened once and appended to township by township, so the whole
county never sits in memory. A writer knows its physical row numbers (the contract's ``row``:
header = 1 in CSV, title + header = rows 1-2 in an xlsx with a title row) and writes the truth
rows (which person each row refers to, which cells were damaged) as it goes.
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import xlsxwriter

# Fixed document properties so xlsx bytes are identical between runs.
_XLSX_CREATED = dt.datetime(2025, 12, 31, 9, 0, 0)
DUP_RATE = 0.003
BAD_RATE = 0.001


@dataclass
class Truth:
    """The open truth files under ``truth/``."""

    root: Path
    records: Any = None
    noise: Any = None
    _fh: list[IO[str]] = field(default_factory=list)

    def open(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        f1 = open(self.root / "records.csv", "w", encoding="utf-8", newline="")  # noqa: SIM115
        f2 = open(self.root / "noise.csv", "w", encoding="utf-8", newline="")  # noqa: SIM115
        self._fh = [f1, f2]
        self.records = csv.writer(f1, lineterminator="\n")
        self.noise = csv.writer(f2, lineterminator="\n")
        self.records.writerow(["source_file", "row", "role", "person_id"])
        self.noise.writerow(["source_file", "row", "role", "field", "noise"])

    def close(self) -> None:
        for f in self._fh:
            f.close()


# A person cell group in a row: (role, person_id, name column, name noise, id column, id noise)
PersonRef = tuple[str, str, str, str, str, str]


class Sink:
    """One raw export file (CSV in some encoding, or xlsx) with mess injection.

    ``mess`` rows may be written twice (an exact duplicate of the export) or damaged
    (wrong field count, unparseable date or amount) at the file's rates; rows that carry a
    planted case or trap are written with ``mess=False``.
    """

    def __init__(
        self,
        raw_root: Path,
        rel: str,
        header: list[str],
        truth: Truth,
        rng: np.random.Generator,
        *,
        encoding: str = "utf-8",
        title: str | None = None,
        crlf: bool = False,
        dup_rate: float = DUP_RATE,
        bad_rate: float = BAD_RATE,
        bad_cols: tuple[int, ...] = (),
        date_cols: tuple[int, ...] = (),
    ) -> None:
        self.rel = rel
        self.header = header
        self.truth = truth
        self.rng = rng
        self.dup_rate = dup_rate
        self.bad_rate = bad_rate if bad_cols else 0.0
        self.bad_cols = bad_cols
        self.xlsx = rel.endswith(".xlsx")
        self.rows = 0  # data rows written
        self.last_dup = False  # the last write() emitted an exact duplicate row
        self.last_bad = False  # the last write() emitted a damaged row
        path = raw_root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.xlsx:
            self.wb = xlsxwriter.Workbook(
                str(path), {"constant_memory": True, "strings_to_numbers": False}
            )
            self.wb.set_properties({"created": _XLSX_CREATED, "author": "crossmatch synth"})
            self.ws = self.wb.add_worksheet("Sheet1")
            self.date_fmt = self.wb.add_format({"num_format": "yyyy-mm-dd"})
            self.line = 0  # next 0-based sheet row
            if title:
                self.ws.write_string(0, 0, title)
                self.line = 1
            for c, h in enumerate(header):
                self.ws.write_string(self.line, c, h)
            self.line += 1
            self.date_cols = set(date_cols)
        else:
            self.fh = open(path, "w", encoding=encoding, newline="")  # noqa: SIM115
            self.w = csv.writer(self.fh, lineterminator="\r\n" if crlf else "\n")
            self.w.writerow(header)
            self.line = 1  # lines written so far

    def write(self, cells: list[Any], refs: list[PersonRef], mess: bool = True) -> int:
        """Write one row (maybe twice, maybe damaged); return its physical row number."""
        n = 2 if mess and self.rng.random() < self.dup_rate else 1
        self.last_bad = bool(mess and self.bad_rate and self.rng.random() < self.bad_rate)
        if self.last_bad:
            cells = self._damage(cells)
        self.last_dup = n == 2
        first = 0
        for _ in range(n):
            row = self._emit(cells)
            first = first or row
            for role, pid, ncol, nnoise, icol, inoise in refs:
                self.truth.records.writerow([self.rel, row, role, pid])
                if nnoise:
                    self.truth.noise.writerow([self.rel, row, role, ncol, nnoise])
                if inoise:
                    self.truth.noise.writerow([self.rel, row, role, icol, inoise])
        return first

    def _damage(self, cells: list[Any]) -> list[Any]:
        cells = list(cells)
        if not self.xlsx and self.rng.random() < 0.4:
            return cells[:-2]  # wrong field count
        c = self.bad_cols[int(self.rng.integers(0, len(self.bad_cols)))]
        cells[c] = ["待核实", "2025-13-45", "#REF!", "壹佰元", "-"][int(self.rng.integers(0, 5))]
        return cells

    def _emit(self, cells: list[Any]) -> int:
        self.rows += 1
        if not self.xlsx:
            self.w.writerow(["" if v is None else v for v in cells])
            self.line += 1
            return self.line
        r = self.line
        for c, v in enumerate(cells):
            if v is None or v == "":
                continue
            if isinstance(v, dt.date):
                self.ws.write_datetime(r, c, dt.datetime(v.year, v.month, v.day), self.date_fmt)
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                self.ws.write_number(r, c, v)
            else:
                self.ws.write_string(r, c, str(v))
        self.line += 1
        return r + 1

    def close(self) -> None:
        if self.xlsx:
            self.wb.close()
        else:
            self.fh.close()
