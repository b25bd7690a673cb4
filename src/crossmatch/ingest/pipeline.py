"""Load raw files into the canonical ``src_<source>`` tables, with lineage and quarantine.

For each source spec and each file matching its globs:

1. unchanged (same content hash and same spec as the version in the warehouse): nothing happens;
2. otherwise, inside ONE DuckDB transaction: the file's previous rows and quarantine entries are
   deleted, the new rows are read in batches, normalised (columnar), split into loaded rows and
   quarantined rows, and inserted; the ``ingest_file`` row is written; commit. Any failure rolls
   back, so the previous version stays intact, and the failure is recorded with its message.

Invariant per file, recorded in ``ingest_file``: rows_read = rows_loaded + rows_quarantined.
Exact duplicate rows are loaded with ``_dup_of`` = the row number of their first occurrence.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import polars as pl

from crossmatch import normalize, warehouse
from crossmatch.errors import InputFileError
from crossmatch.ingest import readers
from crossmatch.spec import SourceSpec, load_sources
from crossmatch.spec.common import nearest

log = logging.getLogger(__name__)

Progress = Callable[["ProgressEvent"], None]


@dataclass(slots=True)
class ProgressEvent:
    """Reported while ingesting: ``kind`` is start / bytes / done."""

    kind: str
    source: str
    file: str
    done: int = 0
    total: int = 0
    result: FileResult | None = None


@dataclass(slots=True)
class FileResult:
    """Outcome for one file (status: loaded / unchanged / failed / missing / nofile)."""

    source: str
    file: str
    status: str
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    rows_duplicate: int = 0
    seconds: float = 0.0
    message: str = ""
    hash: str = ""
    encoding: str | None = None


@dataclass(slots=True)
class IngestSummary:
    """Everything one ``ingest`` did; :meth:`render` is the CLI's per-source table."""

    run_id: str
    results: list[FileResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> list[FileResult]:
        return [r for r in self.results if r.status in ("failed", "nofile")]

    def per_source(self) -> list[dict[str, Any]]:
        rows: dict[str, dict[str, Any]] = {}
        for r in self.results:
            s = rows.setdefault(
                r.source,
                {
                    "source": r.source,
                    "files": 0,
                    "loaded": 0,
                    "unchanged": 0,
                    "failed": 0,
                    "rows": 0,
                    "rows_loaded": 0,
                    "quarantined": 0,
                    "duplicates": 0,
                    "seconds": 0.0,
                },
            )
            if r.status in ("loaded", "unchanged", "failed"):
                s["files"] += 1
                s[r.status] += 1
            if r.status == "nofile":
                s["failed"] += 1
            s["rows"] += r.rows_read
            s["rows_loaded"] += r.rows_loaded
            s["quarantined"] += r.rows_quarantined
            s["duplicates"] += r.rows_duplicate
            s["seconds"] += r.seconds
        return list(rows.values())

    def render(self) -> str:
        head = (
            "source",
            "files",
            "new",
            "same",
            "failed",
            "rows",
            "loaded",
            "quarant.",
            "dups",
            "s",
        )
        body: list[tuple[Any, ...]] = [
            (
                s["source"],
                s["files"],
                s["loaded"],
                s["unchanged"],
                s["failed"],
                s["rows"],
                s["rows_loaded"],
                s["quarantined"],
                s["duplicates"],
                f"{s['seconds']:.1f}",
            )
            for s in self.per_source()
        ]
        tot = [sum(int(b[i]) for b in body) for i in range(1, 9)]
        body.append(("TOTAL", *tot, f"{self.seconds:.1f}"))
        widths = [max(len(str(x)) for x in col) for col in zip(head, *body, strict=True)]

        def fmt(row: tuple) -> str:
            return "  ".join(
                str(v).ljust(w) if i == 0 else str(v).rjust(w)
                for i, (v, w) in enumerate(zip(row, widths, strict=True))
            )

        lines = [fmt(head), "  ".join("-" * w for w in widths)]
        lines += [fmt(b) for b in body]
        problems = [r for r in self.results if r.status in ("failed", "nofile", "missing")]
        if problems:
            lines.append("")
            lines += [f"{r.status.upper()}: {r.message}" for r in problems]
        return "\n".join(lines)


JEMALLOC_CONF = "dirty_decay_ms:10000,muzzy_decay_ms:10000"


def tune_allocators() -> None:
    """Keep freed memory for reuse instead of returning it to the OS after every batch.

    Each 32 MB block allocates and frees a few large buffers; glibc serves them with mmap and
    unmaps them on free, so every batch page-faults its memory again: measured 6 s of system
    time per 1.7M rows, 1 s after this. Process-wide, so only the CLI and the benchmark call it
    (polars' jemalloc is tuned by ``_RJEM_MALLOC_CONF`` = JEMALLOC_CONF before polars loads)."""
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        libc.mallopt(m_mmap_threshold, 1 << 30)
        libc.mallopt(m_trim_threshold, 1 << 31)
    except (OSError, AttributeError):  # not glibc: nothing to tune
        log.debug("mallopt unavailable", exc_info=True)


def file_sha256(path: Path) -> str:
    """Content hash (sha256) of a file, streamed (hashlib releases the GIL: runs in a thread)."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 24), b""):
            h.update(chunk)
    return h.hexdigest()


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
    for f in spec.fields:
        idx = next((index[n] for a in f.columns if (n := readers.norm_header(a)) in index), None)
        mapping[f.name] = idx
        if idx is None and not f.optional:
            missing.append((f.name, f.columns[0], nearest(f.columns[0], free or header)))
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


# ----------------------------------------------------------------------------- batches


def normalise_distinct(
    raw: pl.Series, name: str, params: dict[str, Any]
) -> tuple[dict[str, pl.Series], pl.Series]:
    """Run normalizer ``name`` on the *distinct* values of ``raw`` and map back.

    Why: most columns repeat a few values (dates, amounts, villages) and even names and IDs
    repeat across a person's rows; normalising each distinct value once makes the cost scale
    with cardinality, and a hash join maps the results back in row order."""
    uniq = raw.unique()
    if len(uniq) * 2 > len(raw):  # nearly all distinct: the join would cost more than it saves
        res = normalize.get(name)(raw, params)
        return res.columns, res.error
    res = normalize.get(name)(uniq, params)
    table = pl.DataFrame(
        {"__k": uniq, **{f"__o{s}": v for s, v in res.columns.items()}, "__e": res.error}
    )
    joined = pl.DataFrame({"__k": raw}).join(
        table, on="__k", how="left", nulls_equal=True, maintain_order="left"
    )
    return {s: joined[f"__o{s}"].alias(s) for s in res.columns}, joined["__e"]


def _unique_names(header: list[str]) -> list[str]:
    out: list[str] = []
    for i, h in enumerate(header):
        name = h or f"column{i + 1}"
        while name in out:
            name = f"{name}_{i + 1}"
        out.append(name)
    return out


@dataclass(slots=True)
class _FileState:
    spec: SourceSpec
    rel: str
    file_hash: str
    header: list[str]
    mapping: dict[str, int | None]
    # exact duplicates across batches: row hashes seen so far (sorted) and their first row
    seen_h: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.uint64))
    seen_row: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int32))
    read: int = 0
    loaded: int = 0
    quarantined: int = 0
    duplicate: int = 0


def _earlier_first(st: _FileState, df: pl.DataFrame) -> pl.Series:
    """Per row: the first row of an identical row in an earlier batch, else NULL.

    A sorted numpy array and binary search: a hash join against millions of already-seen
    rows cost ~1 s per batch; this costs milliseconds."""
    h = df["_h"].to_numpy()
    out = np.full(len(h), -1, dtype=np.int64)
    if len(st.seen_h):
        # sorted needles: numpy's binary search starts from the previous hit, so the look-ups
        # walk the big array once instead of jumping at random (cache misses: 4x slower)
        order = np.argsort(h)
        hs = h[order]
        idx = np.searchsorted(st.seen_h, hs)
        ok = idx < len(st.seen_h)
        ok[ok] = st.seen_h[idx[ok]] == hs[ok]
        out[order[ok]] = st.seen_row[idx[ok]]
    x = pl.col("x")
    return (
        pl.DataFrame({"x": out})
        .select(pl.when(x >= 0).then(x).cast(pl.Int32).alias("_first"))
        .to_series()
    )


def _remember(st: _FileState, h: np.ndarray, rows: np.ndarray) -> None:
    if not len(h):
        return
    order = np.argsort(h, kind="stable")
    h, rows = h[order], rows[order].astype(np.int32)
    pos = np.searchsorted(st.seen_h, h)
    st.seen_h = np.insert(st.seen_h, pos, h)
    st.seen_row = np.insert(st.seen_row, pos, rows)


def process_batch(st: _FileState, batch: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Normalise one batch; returns (rows for src_<source>, rows for quarantine)."""
    spec, width = st.spec, len(st.header)
    if "_fields" in batch.columns:
        batch = readers.widen(batch, width)
    if "_line" in batch.columns:
        batch = batch.with_columns(
            pl.col("_line").hash().alias("_h"), pl.col("_line").alias("_raw_line")
        )
    else:  # fast CSV path: hash the parsed cells (and the count, for ragged rows)
        cols = [f"c{i}" for i in range(width)]
        batch = batch.with_columns(batch.select(*cols, "_nf", "_raw_line").hash_rows().alias("_h"))
    df = batch
    # exact duplicates: first occurrence in this file (across batches)
    df = df.with_columns(pl.col("_row").min().over("_h").alias("_bfirst"))
    df = df.with_columns(_earlier_first(st, df))
    df = df.with_columns(pl.coalesce("_first", "_bfirst").alias("_f")).with_columns(
        pl.when(pl.col("_f") < pl.col("_row")).then(pl.col("_f")).alias("_dup_of")
    )
    new = df.filter(pl.col("_first").is_null() & (pl.col("_row") == pl.col("_bfirst")))
    _remember(st, new["_h"].to_numpy(), new["_row"].to_numpy())
    shape_ok = pl.col("_nf") == width  # readers discount trailing empty cells
    bad_shape = df.filter(~shape_ok)
    df = df.filter(shape_ok)
    st.read += len(bad_shape) + len(df)

    names = _unique_names(st.header)
    cells = df.select([pl.col(f"c{i}").alias(names[i]) for i in range(width)])
    out_cols: dict[str, pl.Series] = {}
    errors: list[pl.Series] = []
    for f in spec.fields:
        idx = st.mapping[f.name]
        raw = cells[names[idx]] if idx is not None else pl.Series([None] * len(df), dtype=pl.String)
        values, error = normalise_distinct(raw, f.normalizer, f.params)
        for suffix, s in values.items():
            out_cols[f.name + suffix] = s
        label = st.header[idx] if idx is not None else f.name
        msg: pl.Expr = pl.when(pl.col("e").is_not_null()).then(pl.lit(f"{label}: ") + pl.col("e"))
        if f.required:
            msg = (
                pl.when(pl.col("v").is_null() & pl.col("e").is_null())
                .then(pl.lit(f"{label}: empty, but the field '{f.name}' is required"))
                .otherwise(msg)
            )
        err = pl.DataFrame({"e": error, "v": values[""]}).select(msg).to_series()
        errors.append(err.alias(f"_e{len(errors)}"))
    reason = (
        pl.DataFrame(errors)
        .select(pl.concat_str(pl.all(), separator="; ", ignore_nulls=True).alias("r"))
        .to_series()
        if errors
        else pl.Series("r", [""] * len(df))
    )
    good_mask = reason == ""
    lineage = pl.DataFrame(
        {
            "_source": pl.Series([spec.id] * len(df), dtype=pl.String),
            "_file": pl.Series([st.rel] * len(df), dtype=pl.String),
            "_file_hash": pl.Series([st.file_hash] * len(df), dtype=pl.String),
            "_row": df["_row"],
            "_dup_of": df["_dup_of"].cast(pl.Int32),
        }
    )
    full = pl.concat([lineage, pl.DataFrame(out_cols)], how="horizontal")
    good = full.filter(good_mask)
    # quarantine: malformed shape + rows with unparseable values
    q_vals = pl.concat([df.select("_row"), cells], how="horizontal").filter(~good_mask)
    q_reason = reason.filter(~good_mask)
    q1 = q_vals.select(
        pl.col("_row").alias("row"),
        pl.Series("reason", q_reason),
        pl.struct(names).struct.json_encode().alias("raw") if names else pl.lit("{}").alias("raw"),
    )
    q2 = bad_shape.select(
        pl.col("_row").alias("row"),
        (
            pl.lit("row has ")
            + pl.col("_nf").cast(pl.String)
            + pl.lit(
                f" cells but the header has {width} (truncated file, or a delimiter inside"
                " an unquoted value, or a value past the last column?)"
            )
        ).alias("reason"),
        pl.struct(pl.col("_raw_line").alias("line")).struct.json_encode().alias("raw"),
    )
    quar = (
        pl.concat([q1, q2])
        .with_columns(
            pl.lit(spec.id).alias("source"),
            pl.lit(st.rel).alias("file"),
            pl.lit(st.file_hash).alias("file_hash"),
        )
        .select("source", "file", "file_hash", pl.col("row").cast(pl.Int32), "reason", "raw")
    )
    st.loaded += len(good)
    st.quarantined += len(quar)
    st.duplicate += int(good["_dup_of"].is_not_null().sum())
    return good, quar


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
    aliases = {readers.norm_header(a) for f in spec.fields for a in f.columns}
    if fmt == "csv":
        r = readers.CsvReader(
            path,
            encoding=encoding,
            delimiter=spec.delimiter,
            header_row=spec.header_row,
            aliases=aliases,
            on_progress=on_bytes,
            use_iconv=use_iconv,
        )
        r.info = info
        yield from readers.read_csv_batches(r)
    elif fmt == "xlsx":
        yield from readers.read_xlsx_batches(
            path, info, sheet=spec.sheet, header_row=spec.header_row, aliases=aliases
        )
    elif fmt == "parquet":
        yield from readers.read_parquet_batches(path, info)
    else:
        raise InputFileError(
            f"{path}: unknown file type '.{fmt}'. Fix: set `format:` (csv, xlsx or parquet) "
            f"in {spec.path.as_posix()}."
        )


def _insert(con: duckdb.DuckDBPyConnection, table: str, df: pl.DataFrame) -> None:
    if not len(df):
        return
    con.register("_cm_batch", df.to_arrow())
    try:
        con.execute(f'INSERT INTO "{table}" BY NAME SELECT * FROM _cm_batch')
    finally:
        con.unregister("_cm_batch")


def _record(con: duckdb.DuckDBPyConnection, run_id: str, r: FileResult, **extra: Any) -> None:
    con.execute(
        "INSERT INTO ingest_file (run_id, source, file, hash, spec_digest, size, encoding, "
        "header_row, rows_read, rows_loaded, rows_quarantined, rows_duplicate, seconds, "
        "loaded_at, status, message) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
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
        ],
    )


def ingest_file(
    con: duckdb.DuckDBPyConnection,
    spec: SourceSpec,
    raw_root: Path,
    path: Path,
    run_id: str,
    progress: Progress | None = None,
) -> FileResult:
    """Load one file (or skip it when unchanged); never raises for bad input."""
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
    ).fetchone()
    hasher = ThreadPoolExecutor(max_workers=1)
    try:
        fut: Future[str] = hasher.submit(file_sha256, path)
        if prev and prev[1] == spec.digest:
            try:
                h = fut.result()
            except OSError:
                h = ""
            if h == prev[0]:
                res.status, res.hash = "unchanged", h
                res.seconds = time.perf_counter() - t0
                return res
        return _load(con, spec, path, rel, size, fut, run_id, res, t0, progress)
    finally:
        hasher.shutdown(wait=True)


def _load(
    con: duckdb.DuckDBPyConnection,
    spec: SourceSpec,
    path: Path,
    rel: str,
    size: int,
    fut: Future[str],
    run_id: str,
    res: FileResult,
    t0: float,
    progress: Progress | None,
) -> FileResult:
    # inserting batch N (DuckDB, GIL released) overlaps normalising batch N+1 (polars)
    writer = ThreadPoolExecutor(max_workers=1)
    try:
        return _load_attempts(con, spec, path, rel, size, fut, run_id, res, t0, progress, writer)
    finally:
        writer.shutdown(wait=True)


def _insert_pair(
    con: duckdb.DuckDBPyConnection, table: str, good: pl.DataFrame, quar: pl.DataFrame
) -> None:
    _insert(con, table, good)
    _insert(con, "quarantine", quar)


def _settle(pending: Future | None) -> None:
    """Wait for an in-flight insert before rolling back (its own error is superseded)."""
    if pending is not None:
        try:
            pending.result()
        except Exception:  # the first error is the one reported
            log.debug("insert failed during rollback", exc_info=True)


def _load_attempts(
    con: duckdb.DuckDBPyConnection,
    spec: SourceSpec,
    path: Path,
    rel: str,
    size: int,
    fut: Future[str],
    run_id: str,
    res: FileResult,
    t0: float,
    progress: Progress | None,
    writer: ThreadPoolExecutor,
) -> FileResult:
    fmt = spec.format_for(path)
    encoding = spec.encoding
    use_iconv = True
    for _attempt in range(3):  # at most: UTF-8 -> GB18030 by iconv -> by Python's codec
        info = readers.ReadInfo()
        st: _FileState | None = None
        pending: Future | None = None
        con.begin()
        try:
            on_bytes = (
                (lambda n: progress(ProgressEvent("bytes", spec.id, rel, n, size)))
                if progress
                else None
            )
            for batch in _batches(spec, path, fmt, info, encoding, on_bytes, use_iconv):
                if st is None:
                    mapping, missing = match_columns(spec, info.header)
                    if missing:
                        raise InputFileError(
                            missing_columns_message(spec, rel, info.header_row, missing)
                        )
                    file_hash = fut.result()
                    st = _FileState(
                        spec,
                        rel,
                        file_hash,
                        info.header,
                        mapping,
                    )
                    con.execute(f'DELETE FROM "{spec.table}" WHERE _file = ?', [rel])
                    con.execute(
                        "DELETE FROM quarantine WHERE source = ? AND file = ?", [spec.id, rel]
                    )
                good, quar = process_batch(st, batch)
                if pending is not None:
                    pending.result()
                pending = writer.submit(_insert_pair, con, spec.table, good, quar)
            if pending is not None:
                pending.result()
                pending = None
            if st is None:
                if not info.header:
                    raise InputFileError(
                        f"{rel}: no header and no data rows. Fix: re-export the file; the "
                        f"previous version (if any) stays in the warehouse."
                    )
                mapping, missing = match_columns(spec, info.header)
                if missing:
                    raise InputFileError(
                        missing_columns_message(spec, rel, info.header_row, missing)
                    )
                before = con.execute(
                    "SELECT rows_loaded FROM ingest_file WHERE source = ? AND file = ? "
                    "AND status = 'ok'",
                    [spec.id, rel],
                ).fetchone()
                if before and before[0]:
                    raise InputFileError(
                        f"{rel}: header only, no data rows, while the version in the warehouse "
                        f"has {before[0]} rows; kept that version. Fix: re-export the file with "
                        f"its data (to really empty it, delete its rows from {spec.table})."
                    )
                # an empty register (e.g. no filings yet) is a legitimate, empty version
                st = _FileState(
                    spec,
                    rel,
                    fut.result(),
                    info.header,
                    mapping,
                )
                con.execute(f'DELETE FROM "{spec.table}" WHERE _file = ?', [rel])
                con.execute("DELETE FROM quarantine WHERE source = ? AND file = ?", [spec.id, rel])
                info.notes.append("header only: 0 data rows")
            res.status = "loaded"
            res.hash = st.file_hash
            res.rows_read, res.rows_loaded = st.read, st.loaded
            res.rows_quarantined, res.rows_duplicate = st.quarantined, st.duplicate
            res.encoding = info.encoding
            res.message = "; ".join(info.notes)
            res.seconds = time.perf_counter() - t0
            con.execute(
                "UPDATE ingest_file SET status = 'replaced' "
                "WHERE source = ? AND file = ? AND status = 'ok'",
                [spec.id, rel],
            )
            _record(
                con, run_id, res, spec_digest=spec.digest, size=size, header_row=info.header_row
            )
            con.commit()
            return res
        except readers.RetryWithEncoding as exc:
            _settle(pending)
            con.rollback()
            if isinstance(exc, readers.RetryWithoutIconv):
                use_iconv = False  # same encoding, Python's codec (exact messages)
            else:
                encoding = exc.encoding
            continue
        except InputFileError as exc:
            _settle(pending)
            con.rollback()
            res.message = str(exc)
        except FileNotFoundError:
            _settle(pending)
            con.rollback()
            res.message = (
                f"{rel}: the file disappeared while it was being read. Fix: let the export "
                f"finish copying, then run ingest again; its previous version (if any) stays "
                f"in the warehouse."
            )
        except OSError as exc:
            _settle(pending)
            con.rollback()
            res.message = (
                f"{rel}: cannot read the file ({exc.strerror or exc}). Fix: check it exists "
                f"and is readable, then run ingest again."
            )
        except (pl.exceptions.PolarsError, duckdb.Error) as exc:
            _settle(pending)
            con.rollback()
            log.exception("unexpected error loading %s", rel)
            res.message = (
                f"{rel}: could not be loaded ({type(exc).__name__}: {str(exc).splitlines()[0]})."
                f" The previous version (if any) stays in the warehouse. Please report this."
            )
        break
    res.status = "failed"
    res.hash = fut.result() if fut.done() and fut.exception() is None else ""
    res.encoding = info.encoding
    res.seconds = time.perf_counter() - t0
    _record(con, run_id, res, spec_digest=spec.digest, size=size)
    return res


# ----------------------------------------------------------------------------- runs


def expand_files(spec: SourceSpec, raw_root: Path) -> list[Path]:
    """Files matching the spec's globs under ``raw_root`` (sorted, no duplicates)."""
    found: dict[Path, None] = {}
    for pattern in spec.files:
        for p in sorted(raw_root.glob(pattern)):
            if p.is_file() and not p.name.startswith(("~$", ".")):
                found[p] = None
    return list(found)


def ingest(
    raw_root: str | Path = "data/sample/raw",
    sources: str | Path | list[SourceSpec] = "sources",
    warehouse_path: str | Path | duckdb.DuckDBPyConnection = "crossmatch.duckdb",
    *,
    only: list[str] | None = None,
    progress: Progress | None = None,
    memory_limit: str = "1GB",
) -> IngestSummary:
    """Ingest every source's files; returns the summary (bad files are reported, not raised).

    Raises SpecError for invalid source files and WarehouseError when the warehouse cannot be
    opened: both stop the run before anything is written."""
    raw = Path(raw_root)
    if not raw.is_dir():
        raise InputFileError(
            f"{raw}: raw folder not found. Fix: pass --raw DIR (the folder holding the "
            f"department exports), e.g. data/sample/raw."
        )
    specs = load_sources(sources) if not isinstance(sources, list) else sources
    if only:
        unknown = sorted(set(only) - {s.id for s in specs})
        if unknown:
            raise InputFileError(f"unknown source(s): {', '.join(unknown)}")
        specs = [s for s in specs if s.id in only]
    own = not isinstance(warehouse_path, duckdb.DuckDBPyConnection)
    con: duckdb.DuckDBPyConnection = (
        warehouse_path
        if isinstance(warehouse_path, duckdb.DuckDBPyConnection)
        else warehouse.connect(warehouse_path)
    )
    if own:
        # DuckDB's buffer pool would otherwise grow towards 80% of RAM on a 30M-row county;
        # it spills to disk beyond this, which keeps the whole ingest well under 4 GB
        con.execute(f"SET memory_limit = '{memory_limit}'")
        # DuckDB only appends here, from a writer thread, while polars normalises the next
        # batch and iconv decodes: one DuckDB thread leaves them the other cores (appending
        # the same batches cost 1.6 s CPU with 2 threads, 1.2 s with 1)
        con.execute("SET threads = 1")
    t0 = time.perf_counter()
    summary = IngestSummary(run_id=uuid.uuid4().hex[:12])
    try:
        warehouse.ensure_ingest_schema(con)
        con.execute(
            "INSERT INTO ingest_run (run_id, started_at, raw_root, sources_dir, status) "
            "VALUES (?, ?, ?, ?, 'running')",
            [
                summary.run_id,
                dt.datetime.now(),
                str(raw),
                str(sources if not isinstance(sources, list) else ""),
            ],
        )
        for spec in specs:
            if warehouse.ensure_table(con, spec.table, spec.columns()):
                con.execute(
                    "UPDATE ingest_file SET status = 'replaced' WHERE source = ? AND status = 'ok'",
                    [spec.id],
                )
                con.execute("DELETE FROM quarantine WHERE source = ?", [spec.id])
            files = expand_files(spec, raw)
            if not files:
                summary.results.append(
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
            seen = set()
            for path in files:
                rel = path.relative_to(raw).as_posix()
                seen.add(rel)
                if progress:
                    progress(ProgressEvent("start", spec.id, rel, 0, 0))
                r = ingest_file(con, spec, raw, path, summary.run_id, progress)
                summary.results.append(r)
                if progress:
                    progress(ProgressEvent("done", spec.id, rel, result=r))
            kept = con.execute(
                "SELECT file, rows_loaded FROM ingest_file WHERE source = ? AND status = 'ok'",
                [spec.id],
            ).fetchall()
            for file, n in kept:
                if file not in seen:
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
    finally:
        if own:
            con.close()
    return summary
