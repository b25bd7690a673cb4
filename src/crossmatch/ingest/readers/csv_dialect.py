"""What a CSV looks like, from its first lines: the delimiter (declared, or found by which
one splits out the mapped headers) and, for DuckDB to read the rest, :func:`csv_head`: the
encoding, delimiter and header of a plain file (None for anything unusual, which
:class:`~crossmatch.ingest.readers.csv_reader.CsvReader` reads instead)."""

from __future__ import annotations

import csv
from pathlib import Path

from crossmatch.errors import InputFileError
from crossmatch.ingest.readers.encoding import detect_encoding, sniff_binary
from crossmatch.ingest.readers.headers import HEADER_SCAN_ROWS, header_score, take_header
from crossmatch.ingest.readers.info import ReadInfo

DELIMITERS = (",", "\t", ";", "|")
_DELIM_NAMES = {",": "comma", "\t": "tab", ";": "semicolon", "|": "|"}


def resolve_delimiter(
    path: Path, encoding: str, declared: str, header_row: int | None, aliases: set[str]
) -> tuple[str, str | None]:
    """The delimiter to read a CSV with, and a note when it is not the declared one.

    ``auto``: the one of comma, tab, semicolon, | whose split of the first lines names the most
    mapped headers (comma on a tie; with no header found, the most frequent one in line 1). A
    declared delimiter is kept unless the header does not split on it while another one
    finds it (a tab-separated export mapped as CSV)."""
    fallback = "," if declared == "auto" else declared
    try:
        with path.open("rb") as fh:
            head = fh.read(1 << 16)
        enc = detect_encoding(path, head, encoding)
    except (OSError, InputFileError):
        return fallback, None  # the reader words the problem
    text = head.decode(enc, errors="replace").lstrip("\ufeff")
    lines = [ln.rstrip("\r") for ln in text.split("\n")[:HEADER_SCAN_ROWS]]

    def score(d: str) -> int:
        try:
            rows = list(enumerate(csv.reader(lines, delimiter=d), 1))
        except csv.Error:
            return 0
        if header_row is not None:
            rows = [r for r in rows if r[0] == header_row]
        return header_score(rows, aliases)

    if declared != "auto":
        if not aliases or score(declared) > 0:
            return declared, None
        others = [d for d in DELIMITERS if d != declared]
        scores = {d: score(d) for d in others}
        best = max(others, key=lambda d: scores[d])
        if scores[best] > 0:
            return best, (
                f"the header does not split on the declared delimiter "
                f"({_DELIM_NAMES.get(declared, declared)}): read as {_DELIM_NAMES[best]}-separated"
            )
        return declared, None
    scores = {d: score(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: scores[d])
    if scores[best] == 0:
        first = lines[0] if lines else ""
        best = max(DELIMITERS, key=first.count) if any(d in first for d in DELIMITERS) else ","
    return best, None


def csv_head(
    path: Path,
    *,
    encoding: str = "auto",
    delimiter: str = ",",
    header_row: int | None = None,
    aliases: set[str] | None = None,
    header_rows: int = 1,
) -> ReadInfo | None:
    """Encoding and header row of a CSV from its first megabyte, for DuckDB to read the rest.

    None whenever anything is unusual (empty, binary, undecodable head, no header found,
    quoted line breaks near the top ...): :class:`CsvReader` then reads the file and words
    the problem exactly as before."""
    aliases = aliases or set()
    try:
        with path.open("rb") as fh:
            head = fh.read(1 << 20)
            more = bool(fh.read(1))
        if not head:
            return None
        sniff_binary(path, head)
        enc = detect_encoding(path, head, encoding)
        if enc.startswith("utf-16"):  # DuckDB reads UTF-8 only: the readers transcode it
            return None
        cut = head.rfind(b"\n") if more else len(head)
        if cut < 0:
            return None
        text = head[:cut].decode(enc)
        lines = [ln.rstrip("\r") for ln in text.lstrip("\ufeff").split("\n")[:HEADER_SCAN_ROWS]]
        if any(ln.count('"') % 2 for ln in lines):
            return None
        delim, note = resolve_delimiter(path, encoding, delimiter, header_row, aliases)
        rows = [(i + 1, c) for i, c in enumerate(csv.reader(lines, delimiter=delim))]
        hr, cells, title = take_header(path, rows, aliases, header_row, header_rows)
    except (InputFileError, UnicodeDecodeError, OSError, csv.Error):
        return None
    info = ReadInfo(encoding=enc, header_row=hr, header=cells, delimiter=delim, title=title)
    if note:
        info.notes.append(note)
    return info
