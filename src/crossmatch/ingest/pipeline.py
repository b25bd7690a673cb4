"""Load raw files into the canonical ``src_<source>`` tables, with lineage and quarantine.

For each source spec and each file matching its globs (two files at a time, each on its own
DuckDB cursor):

1. unchanged (same content hash and same spec as the version in the warehouse): nothing happens;
2. otherwise the file is staged in a temporary table (by DuckDB for a clean CSV, else by the
   Python readers: :mod:`crossmatch.ingest.raw_staging`), then inside ONE DuckDB transaction: the
   file's previous rows and quarantine entries are deleted, the staged rows are normalised in
   SQL, split into loaded rows and quarantined rows, and inserted; the ``ingest_file`` row is
   written; commit. Any failure rolls back, so the previous version stays intact, and the
   failure is recorded with its message.

Invariant per file, recorded in ``ingest_file``: rows_read = rows_loaded + rows_quarantined.
Exact duplicate rows are loaded with ``_dup_of`` = the row number of their first occurrence.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from crossmatch import normalize, warehouse
from crossmatch.errors import InputFileError
from crossmatch.ingest import assemble, crossfile, derive, raw_staging, readers
from crossmatch.ingest.results import FileResult, IngestSummary, Progress, ProgressEvent
from crossmatch.spec import SourceSpec, load_sources
from crossmatch.spec.common import nearest
from crossmatch.spec.sources import unsafe_pattern

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- column mapping


def match_columns(
    spec: SourceSpec, header: list[str]
) -> tuple[dict[str, int | None], list[tuple[str, str, str | None]]]:
    """Map each field to its header index. Returns (mapping, missing) where missing lists
    (field, wanted header, nearest header in the file) for absent non-optional fields."""
    index: dict[str, int] = {}
    for i, h in enumerate(header):
        index.setdefault(readers.norm_header(h), i)
    mapping: dict[str, int | None] = {}
    missing: list[tuple[str, str, str | None]] = []
    used = {readers.norm_header(a) for f in spec.fields for a in f.columns}
    free = [h for h in header if h and readers.norm_header(h) not in used]
    # a row naming none of the mapped headers is not a header (maybe data): never quote it
    is_header = any(readers.norm_header(h) in used for h in header)
    for f in spec.fields:
        if f.origin != "column":  # a constant, the path, the sheet name or the title
            mapping[f.name] = None
            continue
        idx = next((index[n] for a in f.columns if (n := readers.norm_header(a)) in index), None)
        mapping[f.name] = idx
        if idx is None and not f.optional:
            near = nearest(f.columns[0], free or header) if is_header else None
            missing.append((f.name, f.columns[0], near))
    return mapping, missing


def missing_columns_message(
    spec: SourceSpec, rel: str, header_row: int, missing: list[tuple[str, str, str | None]]
) -> str:
    parts = []
    for fname, want, near in missing:
        hint = f" (nearest header in the file: '{near}')" if near else ""
        parts.append(
            f"column '{want}' (field {fname}) not found in the header row {header_row}{hint}"
        )
    return (
        f"{rel}: " + "; ".join(parts) + f". Fix: add the file's header name to `column:` in "
        f"{spec.path.as_posix()} (a list of aliases is allowed), or mark the field "
        f"`optional: true`."
    )


# ----------------------------------------------------------------------------- files


def _batches(
    spec: SourceSpec,
    path: Path,
    fmt: str,
    info: readers.ReadInfo,
    encoding: str,
    on_bytes: Callable[[int], None] | None,
    use_iconv: bool = True,
) -> Iterator[pl.DataFrame]:
    aliases = _aliases(spec)
    if fmt == "csv":
        r = readers.CsvReader(
            path,
            encoding=encoding,
            delimiter=spec.delimiter,
            header_row=spec.header_row,
            header_rows=spec.header_rows,
            aliases=aliases,
            on_progress=on_bytes,
            use_iconv=use_iconv,
        )
        r.info = info
        yield from readers.read_csv_batches(r)
    elif fmt == "html" or (fmt == "xlsx" and _sniff(path) == "html"):
        if fmt == "xlsx":  # a web system's .xls: an HTML table
            info.notes.append("an HTML table saved as an Excel file: read as HTML")
        yield from readers.read_html_batches(
            path,
            info,
            encoding=encoding,
            header_row=spec.header_row,
            aliases=aliases,
            header_rows=spec.header_rows,
        )
    elif fmt == "json":
        yield from readers.read_json_batches(path, info, records=spec.records, aliases=aliases)
    elif fmt == "xlsx":
        yield from readers.read_xlsx_batches(
            path,
            info,
            sheet=spec.sheet,
            sheets=spec.sheets,
            header_row=spec.header_row,
            header_rows=spec.header_rows,
            aliases=aliases,
        )
    elif fmt == "parquet":
        yield from readers.read_parquet_batches(path, info)
    else:
        raise InputFileError(
            f"{path}: unknown file type '.{fmt}'. Fix: set `format:` (csv, xlsx, html, json or "
            f"parquet) "
            f"in {spec.path.as_posix()}."
        )


def _sniff(path: Path) -> str | None:
    with open(path, "rb") as fh:
        return readers.sniff_kind(fh.read(4096))


def _aliases(spec: SourceSpec) -> set[str]:
    return {readers.norm_header(a) for f in spec.fields for a in f.columns}


def _record(con: duckdb.DuckDBPyConnection, run_id: str, r: FileResult, **extra: Any) -> None:
    con.execute(
        "INSERT INTO ingest_file (run_id, source, file, hash, spec_digest, size, encoding, "
        "header_row, rows_read, rows_loaded, rows_quarantined, rows_duplicate, seconds, "
        "loaded_at, status, message, rows_filtered, rows_summary, optional_columns) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        [
            run_id,
            r.source,
            r.file,
            r.hash,
            extra.get("spec_digest"),
            extra.get("size"),
            r.encoding,
            extra.get("header_row"),
            r.rows_read,
            r.rows_loaded,
            r.rows_quarantined,
            r.rows_duplicate,
            round(r.seconds, 3),
            dt.datetime.now(),
            "ok" if r.status == "loaded" else r.status,
            r.message,
            r.rows_filtered,
            r.rows_summary,
            extra.get("optional_columns"),
        ],
    )


def ingest_file(
    con: duckdb.DuckDBPyConnection,
    spec: SourceSpec,
    raw_root: Path,
    path: Path,
    run_id: str,
    progress: Progress | None = None,
    *,
    allow_shrink: bool = False,
    shrink_ratio: float = 0.5,
) -> FileResult:
    """Load one file (or skip it when unchanged); never raises for bad input.

    A version with fewer than ``shrink_ratio`` times the rows of the one in the warehouse is
    refused (the previous version stays) unless ``allow_shrink``."""
    t0 = time.perf_counter()
    rel = path.relative_to(raw_root).as_posix() if path.is_relative_to(raw_root) else str(path)
    res = FileResult(spec.id, rel, "failed")
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        res.message = (
            f"{rel}: the file disappeared during the run (listed, then gone). Fix: let the "
            f"export finish copying, then run ingest again; its previous version (if any) "
            f"stays in the warehouse."
        )
        _record(con, run_id, res)
        return res
    prev = con.execute(
        "SELECT hash, spec_digest FROM ingest_file WHERE source = ? AND file = ? AND status = 'ok'",
        [spec.id, rel],
    ).fetchall()
    last = prev[0] if prev else None
    scanner = ThreadPoolExecutor(max_workers=1)
    try:
        if last and last[1] == spec.digest:  # probably unchanged: the hash alone decides
            try:
                h = raw_staging.scan_file(path, lines=False).sha256
            except OSError:
                h = ""
            if h == last[0]:
                res.status, res.hash = "unchanged", h
                res.seconds = time.perf_counter() - t0
                return res
        # hashed and line-counted while the file is read
        lines = spec.format_for(path) == "csv"
        fut: Future[raw_staging.FileScan] = scanner.submit(raw_staging.scan_file, path, lines=lines)
        job = _Job(
            con, spec, path, rel, size, fut, run_id, res, t0, progress, allow_shrink, shrink_ratio
        )
        try:
            return _load(job)
        finally:
            raw_staging.drop_stage(con)
    finally:
        scanner.shutdown(wait=True)


@dataclass(slots=True)
class _Job:
    """One file being loaded."""

    con: duckdb.DuckDBPyConnection
    spec: SourceSpec
    path: Path
    rel: str
    size: int
    scan: Future[raw_staging.FileScan]
    run_id: str
    res: FileResult
    t0: float
    progress: Progress | None
    allow_shrink: bool = False
    shrink_ratio: float = 0.5
    optional_columns: str | None = None  # JSON, see optional_columns()

    def file_hash(self) -> str:
        return self.scan.result().sha256

    def on_bytes(self) -> Callable[[int], None] | None:
        if self.progress is None:
            return None
        progress, spec, rel, size = self.progress, self.spec.id, self.rel, self.size
        return lambda n: progress(ProgressEvent("bytes", spec, rel, n, size))


def _stage_by_duckdb(job: _Job, info: readers.ReadInfo) -> int | None:
    """Stage a CSV with DuckDB: rows staged, or None when the Python readers must read it."""
    spec = job.spec
    head = readers.csv_head(
        job.path,
        encoding=spec.encoding,
        delimiter=spec.delimiter,
        header_row=spec.header_row,
        header_rows=spec.header_rows,
        aliases=_aliases(spec),
    )
    if head is None or head.encoding is None:
        return None
    _check_columns(job, head)
    raw_staging.create_stage(job.con, len(head.header))
    try:
        rows = raw_staging.stage_csv(
            job.con,
            job.path,
            job.scan.result,
            encoding=head.encoding,
            delimiter=head.delimiter,
            header_row=head.header_row,
            width=len(head.header),
        )
    except raw_staging.NotStageable as exc:
        log.debug("%s: read by the Python readers (%s)", job.rel, exc)
        return None
    info.encoding, info.header_row, info.header = head.encoding, head.header_row, head.header
    info.delimiter, info.title, info.notes = head.delimiter, head.title, list(head.notes)
    if job.progress:
        job.progress(ProgressEvent("bytes", spec.id, job.rel, job.size, job.size))
    return rows


def _stage_by_readers(job: _Job, info: readers.ReadInfo, encoding: str, use_iconv: bool) -> int:
    """Stage any file through the Python readers; returns the rows staged."""
    spec = job.spec
    created, rows = False, 0
    for batch in _batches(
        spec, job.path, spec.format_for(job.path), info, encoding, job.on_bytes(), use_iconv
    ):
        if not created:
            _check_columns(job, info)
            raw_staging.create_stage(job.con, len(info.header))
            created = True
        raw_staging.stage_batch(job.con, batch, len(info.header))
        rows += len(batch)
    return rows


def _delete_file_rows(con: duckdb.DuckDBPyConnection, spec: SourceSpec, rel: str) -> None:
    """A file's rows and quarantine entries (also ``<rel>#<sheet>`` rows of its sheets)."""
    con.execute(
        f'DELETE FROM "{spec.table}" WHERE _file = ? OR starts_with(_file, ?)', [rel, rel + "#"]
    )
    con.execute(
        "DELETE FROM quarantine WHERE source = ? AND (file = ? OR starts_with(file, ?))",
        [spec.id, rel, rel + "#"],
    )


SHRINK_MIN_ROWS = 10  # below this many rows before, a shrink is no evidence of truncation


def _shrink_guard(job: _Job, rows: int) -> None:
    """Refuse a new version with far fewer rows than the one in the warehouse (a truncated
    export), unless allowed; the previous version then stays. Versions of fewer than
    SHRINK_MIN_ROWS rows are not compared (a tiny register may well halve)."""
    if job.allow_shrink:
        return
    kept = job.con.execute(
        "SELECT rows_read FROM ingest_file WHERE source = ? AND file = ? AND status = 'ok'",
        [job.spec.id, job.rel],
    ).fetchall()
    before = int(kept[0][0] or 0) if kept else 0
    if before >= SHRINK_MIN_ROWS and rows < job.shrink_ratio * before:
        raise InputFileError(
            f"{job.rel}: {rows} data rows where the version in the warehouse has {before} "
            f"(fewer than {job.shrink_ratio:.0%}): a truncated export? Kept that version. "
            f"Fix: check the export is complete and re-export it; if the shrink is real, run "
            f"`crossmatch ingest --allow-shrink` (ingest(..., allow_shrink=True))."
        )


def optional_columns(spec: SourceSpec, headers: list[list[str]]) -> str:
    """JSON ``{"present": [...], "absent": [...]}``: the table columns of the source's optional
    ``column:`` fields whose header the file has (in every sheet) or lacks (in some sheet), and
    the ``<role>_pid`` of a person role whose name and ID fields are all such fields. ``detect``
    tells by it an optional column the export lacks (the rules reading it are blind) from one
    that is present and empty in every row (nothing to see: co-owners where no home has one)."""
    present: set[str] = set()
    absent: set[str] = set()
    present_fields: set[str] = set()
    absent_fields: set[str] = set()
    for f in spec.fields:
        if f.origin != "column" or not f.optional:
            continue
        cols = [c for c, _ in f.output_columns()]
        if all(match_columns(spec, h)[0].get(f.name) is not None for h in headers):
            present.update(cols)
            present_fields.add(f.name)
        else:
            absent.update(cols)
            absent_fields.add(f.name)
    for p in spec.persons:  # a role held only in optional columns: its person too
        named = [x for x in (p.name, p.id) if x]
        if named and all(x in present_fields for x in named):
            present.add(f"{p.role}_pid")
        elif named and all(x in absent_fields for x in named):
            absent.add(f"{p.role}_pid")
    return json.dumps({"present": sorted(present), "absent": sorted(absent)}, ensure_ascii=False)


def _check_columns(job: _Job, info: readers.ReadInfo) -> None:
    heads = [p.header for p in info.parts] if job.spec.sheets is not None and info.parts else []
    job.optional_columns = optional_columns(job.spec, heads or [info.header])
    if job.spec.sheets is not None and info.parts:  # every sheet has every mapped column
        for part in info.parts:
            _, missing = match_columns(job.spec, part.header)
            if missing:
                where = f"{job.rel}#{part.name}"
                raise InputFileError(
                    missing_columns_message(job.spec, where, part.header_row, missing)
                )
        return
    _, missing = match_columns(job.spec, info.header)
    if missing:
        raise InputFileError(missing_columns_message(job.spec, job.rel, info.header_row, missing))


def _header_only(job: _Job, info: readers.ReadInfo) -> None:
    """A file with a header and no data rows: an empty register is a legitimate version,
    unless it would silently empty a source that had rows."""
    con, spec, rel = job.con, job.spec, job.rel
    if not info.header:
        raise InputFileError(
            f"{rel}: no header and no data rows. Fix: re-export the file; the "
            f"previous version (if any) stays in the warehouse."
        )
    _check_columns(job, info)
    kept = con.execute(
        "SELECT rows_loaded FROM ingest_file WHERE source = ? AND file = ? AND status = 'ok'",
        [spec.id, rel],
    ).fetchall()
    if kept and kept[0][0]:
        raise InputFileError(
            f"{rel}: header only, no data rows, while the version in the warehouse "
            f"has {kept[0][0]} rows; kept that version. Fix: re-export the file with "
            f"its data (to really empty it, delete its rows from {spec.table})."
        )
    raw_staging.create_stage(con, len(info.header))
    info.notes.append("header only: 0 data rows")


def _load(job: _Job) -> FileResult:
    con, spec, rel, res = job.con, job.spec, job.rel, job.res
    fmt = spec.format_for(job.path)
    encoding = spec.encoding
    use_iconv = True
    info = readers.ReadInfo()
    for attempt in range(3):  # readers: UTF-8 -> GB18030 by iconv -> by Python's codec
        info = readers.ReadInfo()
        try:
            rows = _stage_by_duckdb(job, info) if attempt == 0 and fmt == "csv" else None
            if rows is None:
                info = readers.ReadInfo()
                rows = _stage_by_readers(job, info, encoding, use_iconv)
            if not rows:
                _header_only(job, info)
            else:
                _shrink_guard(job, rows)
            if spec.null_values:  # `null_values:` of the file (a dump's \N): empty cells
                raw_staging.null_markers(con, spec.null_values, len(info.header))
            mapping, _ = match_columns(spec, info.header)
            summary_rows = derive.drop_summary_rows(con, spec, len(info.header), mapping)
            derived = derive.add_derived_cells(con, spec, rel, info, mapping)
            if job.progress:
                note = f"{rows:,} rows read, normalising and writing"
                job.progress(ProgressEvent("phase", spec.id, rel, rows, job.size, note=note))
            con.begin()
            try:
                _delete_file_rows(con, spec, rel)
                counts = assemble.normalise(  # raw_staging.normalise, unpivot groups first
                    con,
                    spec,
                    rel,
                    job.file_hash(),
                    derived.header,
                    derived.mapping,
                    job.run_id,
                )
                res.warnings = counts.warnings
                hint = raw_staging.null_marker_hint(con, spec, rel, info.header, mapping)
                if hint:
                    res.warnings.insert(0, hint)
                derive.sheet_lineage(con, spec, rel, info)  # before `where:` (it may use _file)
                filtered = derive.apply_where(con, spec, rel)
                if filtered:
                    counts.loaded -= filtered
                    counts.duplicate = int(
                        warehouse.fetch_one(
                            con,
                            f'SELECT count(_dup_of) FROM "{spec.table}" '
                            "WHERE _file = ? OR starts_with(_file, ?)",
                            [rel, rel + "#"],
                        )[0]
                    )
                res.status = "loaded"
                res.hash = job.file_hash()
                res.rows_read = counts.read + summary_rows
                res.rows_loaded = counts.loaded
                res.rows_quarantined, res.rows_duplicate = counts.quarantined, counts.duplicate
                res.rows_filtered, res.rows_summary = filtered, summary_rows
                res.encoding = info.encoding
                if summary_rows:
                    info.notes.append(f"{summary_rows} summary row(s) (合计/总计/小计) skipped")
                if filtered:
                    info.notes.append(f"{filtered} row(s) not matching `where:` dropped")
                res.message = "; ".join(info.notes)
                res.seconds = time.perf_counter() - job.t0
                con.execute(
                    "UPDATE ingest_file SET status = 'replaced' "
                    "WHERE source = ? AND file = ? AND status = 'ok'",
                    [spec.id, rel],
                )
                _record(
                    con,
                    job.run_id,
                    res,
                    spec_digest=spec.digest,
                    size=job.size,
                    header_row=info.header_row,
                    optional_columns=job.optional_columns,
                )
                con.commit()
            except BaseException:
                con.rollback()
                raise
            return res
        except readers.RetryWithEncoding as exc:
            if isinstance(exc, readers.RetryWithoutIconv):
                use_iconv = False  # same encoding, Python's codec (exact messages)
            else:
                encoding = exc.encoding
            continue
        except InputFileError as exc:
            res.message = str(exc)
        except FileNotFoundError:
            res.message = (
                f"{rel}: the file disappeared while it was being read. Fix: let the export "
                f"finish copying, then run ingest again; its previous version (if any) stays "
                f"in the warehouse."
            )
        except OSError as exc:
            res.message = (
                f"{rel}: cannot read the file ({exc.strerror or exc}). Fix: check it exists "
                f"and is readable, then run ingest again."
            )
        except (pl.exceptions.PolarsError, duckdb.Error) as exc:
            # the exception's text may quote a cell (a name, an ID number): never logged
            log.error("unexpected %s loading %s", type(exc).__name__, rel)
            res.message = (
                f"{rel}: could not be loaded ({type(exc).__name__}). The previous version (if "
                f"any) stays in the warehouse. Please report this."
            )
        break
    res.status = "failed"
    try:  # the version that failed, for the record (waits for the hash: deterministic)
        res.hash = job.scan.result().sha256
    except OSError:  # the file vanished or cannot be read
        res.hash = ""
    res.encoding = info.encoding
    res.seconds = time.perf_counter() - job.t0
    _record(con, job.run_id, res, spec_digest=spec.digest, size=job.size)
    return res


# ----------------------------------------------------------------------------- runs


def _run_files(
    con: duckdb.DuckDBPyConnection,
    slots: list[FileResult | tuple[SourceSpec, Path]],
    raw: Path,
    run_id: str,
    progress: Progress | None,
    workers: int | None,
    allow_shrink: bool = False,
    shrink_ratio: float = 0.5,
) -> list[FileResult]:
    """Load the files of ``slots`` (results kept in slot order).

    Why several at a time: much of a file's load runs on one core (DuckDB appending to the
    table, iconv, the Python normalizers on leftover values, xlsx parsing), so a second file
    fills the other core. Largest files first, so the last one to finish is a small one."""
    n = workers if workers is not None else min(2, os.cpu_count() or 1)
    lock = threading.Lock()

    def report(ev: ProgressEvent) -> None:
        if progress is not None:
            with lock:
                progress(ev)

    def one(spec: SourceSpec, path: Path) -> FileResult:
        rel = path.relative_to(raw).as_posix()
        report(ProgressEvent("start", spec.id, rel, 0, 0))
        cur = con.cursor()  # temp tables and the transaction are per cursor
        try:
            r = ingest_file(
                cur,
                spec,
                raw,
                path,
                run_id,
                report if progress else None,
                allow_shrink=allow_shrink,
                shrink_ratio=shrink_ratio,
            )
        finally:
            cur.close()
        report(ProgressEvent("done", spec.id, rel, result=r))
        return r

    normalize.prepare()
    out: list[FileResult | None] = [s if isinstance(s, FileResult) else None for s in slots]
    todo = [(i, s) for i, s in enumerate(slots) if not isinstance(s, FileResult)]
    todo.sort(key=lambda t: -_size(t[1][1]))
    if n <= 1:
        for i, (spec, path) in todo:
            out[i] = one(spec, path)
    else:
        with ThreadPoolExecutor(max_workers=n, thread_name_prefix="ingest") as pool:
            futs = {i: pool.submit(one, spec, path) for i, (spec, path) in todo}
            for i, fut in futs.items():
                out[i] = fut.result()
    return [r for r in out if r is not None]


def _cross_file_duplicates(
    con: duckdb.DuckDBPyConnection, spec: SourceSpec, summary: IngestSummary
) -> None:
    """Mark rows repeated across the source's files (:mod:`crossmatch.ingest.crossfile`) and
    count them on the files' results, with a warning naming the files (never values)."""
    mine = [r for r in summary.results if r.source == spec.id]
    if not crossfile.needs_pass(con, spec, any(r.status == "loaded" for r in mine)):
        return
    marked = crossfile.mark(con, spec, summary.run_id)
    by_file = {r.file: r for r in mine}
    for file, n in sorted(marked.items()):
        r = by_file.get(file)
        if r is None:
            continue
        r.rows_duplicate += n
        of = con.execute(
            f"SELECT DISTINCT of_file FROM {crossfile.DUPLICATE_TABLE} WHERE source = ? AND "
            "split_part(file, '#', 1) = ? ORDER BY 1",
            [spec.id, file],
        ).fetchall()
        r.warnings.append(
            f"{file}: {n} rows repeat rows of {', '.join(f for (f,) in of)} (an overlapping "
            f"export): counted once, see ingest_duplicate. Fix: remove the overlap from one "
            f"export if it is not intended."
        )


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def expand_files(spec: SourceSpec, raw_root: Path) -> list[Path]:
    """Files matching the spec's globs under ``raw_root`` (sorted, no duplicates).

    A glob that would leave the raw folder (absolute, ``..``) raises InputFileError."""
    found: dict[Path, None] = {}
    for pattern in spec.files:
        why = unsafe_pattern(pattern)
        if why:
            raise InputFileError(
                f"{spec.path.as_posix()}: files pattern {pattern!r} {why}. Fix: write a glob "
                f"relative to the raw folder, e.g. `finance/*.csv`."
            )
        for p in sorted(raw_root.glob(pattern)):
            if p.is_file() and not p.name.startswith(("~$", ".")):
                found[p] = None
    return list(found)


_COPY_NAME = re.compile(r"副本|copy|\(\d+\)|（\d+）", re.IGNORECASE)


def split_copies(files: list[Path], raw: Path) -> tuple[list[Path], dict[Path, Path]]:
    """(files to load, copy -> original) for files with byte-identical content (a Windows
    ``… - 副本.csv``): the original is the one whose name looks least like a copy (then the
    shortest, then the first by name). Only files of equal size are hashed."""
    by_size: dict[int, list[Path]] = {}
    for p in files:
        with contextlib.suppress(OSError):
            by_size.setdefault(p.stat().st_size, []).append(p)
    copies: dict[Path, Path] = {}
    for same in by_size.values():
        if len(same) < 2:
            continue
        by_hash: dict[str, list[Path]] = {}
        for p in same:
            try:
                by_hash.setdefault(raw_staging.scan_file(p, lines=False).sha256, []).append(p)
            except OSError:
                continue
        for group in by_hash.values():
            group.sort(key=lambda q: (bool(_COPY_NAME.search(q.stem)), len(q.name), q.name))
            for q in group[1:]:
                copies[q] = group[0]
    return [p for p in files if p not in copies], copies


def _skip_copy(
    con: duckdb.DuckDBPyConnection, spec: SourceSpec, raw: Path, copy: Path, orig: Path, run_id: str
) -> FileResult:
    """Record a byte-identical copy as skipped; rows an earlier run loaded from it go."""
    rel, orel = copy.relative_to(raw).as_posix(), orig.relative_to(raw).as_posix()
    res = FileResult(
        spec.id,
        rel,
        "skipped",
        message=(
            f"{rel}: the same bytes as {orel} (a copy): loaded once, from {orel}. Fix: delete "
            f"the copy from the raw folder (or narrow `files:` in {spec.path.as_posix()})."
        ),
    )
    con.begin()
    try:
        _delete_file_rows(con, spec, rel)
        con.execute(
            "UPDATE ingest_file SET status = 'replaced' "
            "WHERE source = ? AND file = ? AND status = 'ok'",
            [spec.id, rel],
        )
        _record(con, run_id, res, spec_digest=spec.digest, size=_size(copy))
        con.commit()
    except BaseException:
        con.rollback()
        raise
    return res


RUN_COLUMNS = (("started_by", "VARCHAR"),)
FILE_COLUMNS = (
    ("rows_filtered", "BIGINT"),
    ("rows_summary", "BIGINT"),
    ("optional_columns", "VARCHAR"),
)


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """The ingestion tables, with the columns added since v1 (older warehouses too):
    ``ingest_run.started_by``, ``ingest_file.rows_filtered`` / ``rows_summary`` /
    ``optional_columns``."""
    warehouse.ensure_ingest_schema(con)
    crossfile.ensure_tables(con)
    for table, cols in (("ingest_run", RUN_COLUMNS), ("ingest_file", FILE_COLUMNS)):
        for name, typ in cols:
            con.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {name} {typ}")


def _user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in the environment nor the password file
        return f"uid {os.getuid()}" if hasattr(os, "getuid") else "unknown"


def ingest(
    raw_root: str | Path = "data/sample/raw",
    sources: str | Path | list[SourceSpec] = "sources",
    warehouse_path: str | Path | duckdb.DuckDBPyConnection = "crossmatch.duckdb",
    *,
    only: list[str] | None = None,
    progress: Progress | None = None,
    memory_limit: str = "2GB",
    workers: int | None = None,
    allow_shrink: bool = False,
    shrink_ratio: float = 0.5,
) -> IngestSummary:
    """Ingest every source's files; returns the summary (bad files are reported, not raised).

    ``workers`` files load at the same time (default: 2, or 1 on a single core), each on its
    own DuckDB cursor and in its own transaction. A file with fewer than ``shrink_ratio``
    times the rows of its version in the warehouse is refused (that version stays) unless
    ``allow_shrink``. Byte-identical files of one source are loaded once (the copies are
    reported ``skipped``). A new warehouse file is created readable by its owner only (0600);
    ``ingest_run`` records who started each run, and runs a killed process left ``running``
    are marked ``interrupted`` at the next start.

    Raises SpecError for invalid source files and WarehouseError when the warehouse cannot be
    opened: both stop the run before anything is written."""
    if not re.fullmatch(r"\d+(\.\d+)?\s*([KMGT]i?B)", memory_limit.strip(), re.IGNORECASE):
        raise ValueError(f"memory_limit {memory_limit!r}: write it like 2GB or 1500MB")
    if not 0 <= shrink_ratio <= 1:
        raise ValueError(f"shrink_ratio {shrink_ratio!r}: a share between 0 and 1, e.g. 0.5")
    raw = Path(raw_root)
    if not raw.is_dir():
        raise InputFileError(
            f"{raw}: raw folder not found. Fix: pass --raw DIR (the folder holding the "
            f"department exports), e.g. data/sample/raw."
        )
    specs = load_sources(sources) if not isinstance(sources, list) else sources
    every = specs  # assemble: sources looking up a loaded one re-assemble even with `only`
    if only:
        unknown = sorted(set(only) - {s.id for s in specs})
        if unknown:
            raise InputFileError(f"unknown source(s): {', '.join(unknown)}")
        specs = [s for s in specs if s.id in only]
    # join / lookup / unpivot: the files load as units, assembled after the files (assemble.py)
    asm_plan = assemble.plan(specs, every)
    specs = asm_plan.units
    for spec in specs:  # before anything is written: a glob leaving the raw folder
        for pattern in spec.files:
            why = unsafe_pattern(pattern)
            if why:
                raise InputFileError(
                    f"{spec.path.as_posix()}: files pattern {pattern!r} {why}. Fix: write a "
                    f"glob relative to the raw folder, e.g. `finance/*.csv`."
                )
    own = not isinstance(warehouse_path, duckdb.DuckDBPyConnection)
    # the warehouse holds ID numbers: a new file (and its WAL) readable by its owner only
    old_mask = os.umask(0o077) if own and hasattr(os, "umask") else None
    try:
        return _ingest(
            raw,
            sources,
            specs,
            warehouse_path,
            own,
            progress,
            memory_limit,
            workers,
            allow_shrink,
            shrink_ratio,
            asm_plan,
        )
    finally:
        if old_mask is not None:
            os.umask(old_mask)


def _ingest(
    raw: Path,
    sources: str | Path | list[SourceSpec],
    specs: list[SourceSpec],
    warehouse_path: str | Path | duckdb.DuckDBPyConnection,
    own: bool,
    progress: Progress | None,
    memory_limit: str,
    workers: int | None,
    allow_shrink: bool,
    shrink_ratio: float,
    asm_plan: assemble.Plan,
) -> IngestSummary:
    con: duckdb.DuckDBPyConnection = (
        warehouse_path
        if isinstance(warehouse_path, duckdb.DuckDBPyConnection)
        else warehouse.connect(warehouse_path)
    )
    if own:
        # DuckDB's buffer pool would otherwise grow towards 80% of RAM on a 30M-row county;
        # it spills to disk beyond this, which keeps the whole ingest well under 4 GB
        con.execute(f"SET memory_limit = '{memory_limit}'")
        # plain FSST string compression costs a quarter of the time of writing the canonical
        # tables; DuckDB's dictionary+FSST variant then takes its place at the same file size
        # (measured: 2.6M payment rows, 3.6 s -> 2.7 s, 121 MB both)
        con.execute("SET disabled_compression_methods = 'fsst'")
    t0 = time.perf_counter()
    summary = IngestSummary(run_id=uuid.uuid4().hex[:12])
    started = False
    try:
        ensure_schema(con)
        # a run still `running` was killed (DuckDB lets one process write at a time)
        con.execute(
            "UPDATE ingest_run SET status = 'interrupted' WHERE status = 'running'",
        )
        con.execute(
            "INSERT INTO ingest_run (run_id, started_at, raw_root, sources_dir, status, "
            "started_by) VALUES (?, ?, ?, ?, 'running', ?)",
            [
                summary.run_id,
                dt.datetime.now(),
                str(raw),
                str(sources if not isinstance(sources, list) else ""),
                _user(),
            ],
        )
        started = True
        # every table first (DDL on this connection), then the files, several at a time
        slots: list[FileResult | tuple[SourceSpec, Path]] = []
        seen: dict[str, set[str]] = {}
        for spec in specs:
            if warehouse.ensure_table(con, spec.table, spec.columns()):
                con.execute(
                    "UPDATE ingest_file SET status = 'replaced' WHERE source = ? AND status = 'ok'",
                    [spec.id],
                )
                con.execute("DELETE FROM quarantine WHERE source = ?", [spec.id])
            files = expand_files(spec, raw)
            if not files:
                slots.append(
                    FileResult(
                        spec.id,
                        ", ".join(spec.files),
                        "nofile",
                        message=(
                            f"{spec.id}: no file matches {', '.join(spec.files)} under {raw}. "
                            f"Fix: add the export, or correct `files:` in "
                            f"{spec.path.as_posix()}."
                        ),
                    )
                )
            seen[spec.id] = {p.relative_to(raw).as_posix() for p in files}
            files, copies = split_copies(files, raw)
            for copy, orig in copies.items():
                slots.append(_skip_copy(con, spec, raw, copy, orig, summary.run_id))
            slots += [(spec, p) for p in files]
        done = _run_files(
            con, slots, raw, summary.run_id, progress, workers, allow_shrink, shrink_ratio
        )
        for spec in specs:
            summary.results += [r for r in done if r.source == spec.id]
            _cross_file_duplicates(con, spec, summary)
            kept = con.execute(
                "SELECT file, rows_loaded FROM ingest_file WHERE source = ? AND status = 'ok'",
                [spec.id],
            ).fetchall()
            for file, n in kept:
                if file not in seen[spec.id]:
                    summary.results.append(
                        FileResult(
                            spec.id,
                            file,
                            "missing",
                            message=(
                                f"{file}: loaded earlier but not found under {raw} now; its "
                                f"{n} rows stay in the warehouse."
                            ),
                        )
                    )
        assemble.report(summary, assemble.run(con, asm_plan, summary.run_id))
        summary.seconds = time.perf_counter() - t0
        res = summary.results
        con.execute(
            "UPDATE ingest_run SET finished_at = ?, files_loaded = ?, files_unchanged = ?, "
            "files_failed = ?, rows_loaded = ?, rows_quarantined = ?, status = ? WHERE run_id = ?",
            [
                dt.datetime.now(),
                sum(r.status == "loaded" for r in res),
                sum(r.status == "unchanged" for r in res),
                len(summary.failed),
                sum(r.rows_loaded for r in res),
                sum(r.rows_quarantined for r in res),
                "problems" if summary.failed else "ok",
                summary.run_id,
            ],
        )
    except BaseException as exc:
        if started:  # an error or Ctrl-C: the run must not stay `running`
            status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            with contextlib.suppress(duckdb.Error):
                con.execute(
                    "UPDATE ingest_run SET finished_at = ?, status = ? WHERE run_id = ?",
                    [dt.datetime.now(), status, summary.run_id],
                )
        raise
    finally:
        if own:
            con.close()
    return summary
