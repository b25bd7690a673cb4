"""``crossmatch validate --raw``: check source files against the real exports' headers.

Registered as the ``raw`` validator of :func:`crossmatch.spec.validate_all`. For each source,
each glob must match a file and each mapped column must be in that file's header; a missing
column is reported at the field's line in the YAML with the nearest header of the file as the
fix. Only the first rows of each file are read: their mapped cells are normalised too, so that a
column ingest would refuse (mostly unreadable: a wrong column, date style or unit) or a NULL
marker (``\\N``) the mapping does not declare in ``null_values:`` is reported here, before a
night's ingest.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl

from crossmatch import normalize
from crossmatch.errors import InputFileError
from crossmatch.ingest import assemble, derive, readers
from crossmatch.ingest.pipeline import expand_files, match_columns
from crossmatch.spec import register_validator
from crossmatch.spec.common import Problem, Problems, nearest
from crossmatch.spec.sources import SourceSpec, parse_sources


def read_header(spec: SourceSpec, path: Path) -> tuple[int, list[str]]:
    """(header row, header cells) of one raw file; InputFileError when unreadable."""
    info = read_head(spec, path)
    return info.header_row, info.header


def read_head(spec: SourceSpec, path: Path) -> readers.ReadInfo:
    """What the readers learn from the first rows of one raw file (header, title, sheets,
    delimiter); InputFileError when unreadable."""
    return _read_first(spec, path)[0]


def _head_kind(path: Path) -> str | None:
    with open(path, "rb") as fh:
        return readers.sniff_kind(fh.read(4096))


def _read_first(spec: SourceSpec, path: Path) -> tuple[readers.ReadInfo, pl.DataFrame | None]:
    """``read_head`` and the first batch of data rows (cells ``c0`` ..), None when empty."""
    aliases = {readers.norm_header(a) for f in spec.fields for a in f.columns}
    fmt = spec.format_for(path)
    info = readers.ReadInfo()
    first: pl.DataFrame | None = None
    if fmt == "csv":
        r = readers.CsvReader(
            path,
            encoding=spec.encoding,
            delimiter=spec.delimiter,
            header_row=spec.header_row,
            header_rows=spec.header_rows,
            aliases=aliases,
        )
        r.info = info
        try:
            first = next(readers.read_csv_batches(r), None)
        except readers.RetryWithEncoding:
            r = readers.CsvReader(
                path,
                encoding="gb18030",
                delimiter=spec.delimiter,
                header_row=spec.header_row,
                header_rows=spec.header_rows,
                aliases=aliases,
            )
            r.info = info
            first = next(readers.read_csv_batches(r), None)
    elif fmt == "html" or (fmt == "xlsx" and _head_kind(path) == "html"):
        first = next(
            readers.read_html_batches(
                path,
                info,
                encoding=spec.encoding,
                header_row=spec.header_row,
                aliases=aliases,
                header_rows=spec.header_rows,
            ),
            None,
        )
    elif fmt == "json":
        first = next(
            readers.read_json_batches(path, info, records=spec.records, aliases=aliases), None
        )
    elif fmt == "xlsx":
        first = next(
            readers.read_xlsx_batches(
                path,
                info,
                sheet=spec.sheet,
                sheets=spec.sheets,
                header_row=spec.header_row,
                header_rows=spec.header_rows,
                aliases=aliases,
            ),
            None,
        )
    elif fmt == "parquet":
        first = next(readers.read_parquet_batches(path, info), None)
    else:
        raise InputFileError(
            f"{path}: unknown file type '.{fmt}'; set `format:` (csv, xlsx, html, json or "
            f"parquet) in {spec.path}"
        )
    return info, first


SAMPLE_ROWS = 2000  # data rows of each file whose cells `validate --raw` normalises


def check_cells(
    spec: SourceSpec,
    rel: str,
    header: list[str],
    batch: pl.DataFrame | None,
    problems: Problems,
) -> None:
    """What ingest would say of the first ``SAMPLE_ROWS`` data rows, said before it runs: a
    NULL marker (``\\N``, ``NULL`` ...) in mapped columns that ``null_values:`` does not
    declare, and a column the field's normalizer mostly cannot read (ingest refuses such a
    file: wrong column, date style or unit)."""
    if batch is None or batch.height == 0:
        return
    batch = batch.head(SAMPLE_ROWS)
    mapping, _missing = match_columns(spec, header)
    markers = [m for m in normalize.NULL_MARKERS if m not in spec.null_values]
    seen: dict[str, tuple[str, int]] = {}  # header -> (marker, cells)
    for f in spec.fields:
        idx = mapping.get(f.name)
        if idx is None or f.origin != "column" or f"c{idx}" not in batch.columns:
            continue
        cells = batch[f"c{idx}"].cast(pl.String)
        stripped = cells.str.strip_chars()
        for m in markers:
            n = int((stripped == m).sum())
            if n:
                seen.setdefault(header[idx], (m, n))
        if spec.null_values:
            cells = pl.select(
                pl.when(stripped.is_in(list(spec.null_values))).then(None).otherwise(cells)
            ).to_series()
        if f.normalizer == "id":  # never unreadable: statuses, checked by ingest
            continue
        norm = normalize.get(f.normalizer)
        res = norm(cells, f.params)
        filled = int(cells.is_not_null().sum()) - int((stripped == "").sum())
        bad = res.error.drop_nulls()
        if filled and len(bad) >= 3 and len(bad) > f.max_error_share * filled:
            wrong = cells.filter(res.error.is_not_null()).to_list()
            shapes: dict[str, int] = {}
            for v in wrong:
                sh = normalize.value_shape(v)
                shapes[sh] = shapes.get(sh, 0) + 1
            order = sorted(shapes.items(), key=lambda x: -x[1])
            if order[0][0] in markers:  # said once for the file below: declare null_values
                continue
            top = ", ".join(f"{k} ×{n}" for k, n in order[:4])
            marker = next((k for k in shapes if k in normalize.NULL_MARKERS), None)
            problems.add(
                spec.path,
                f.line,
                f"field {f.name!r}: {len(bad)} of the {filled} non-empty cells of column "
                f"'{header[idx]}' in the first {batch.height} rows of {rel} cannot be read by "
                f"normalizer {f.normalizer} (value shapes: {top}); ingest would refuse the file "
                f"(max_error_share {f.max_error_share:g})",
                f"`{marker}` is how the export writes NULL: add `null_values: ['{marker}']` at "
                "the top of the file"
                if marker
                else "check `column:`, the normalizer and its options (date style, `unit:`); "
                "`max_error_share: 1` only if the values really are bad",
            )
    if seen:
        marker = max(seen.values(), key=lambda x: x[1])[0]
        named = ", ".join(f"'{h}' ×{n}" for h, (_m, n) in list(seen.items())[:6])
        problems.add(
            spec.path,
            1,
            f"{rel}: mapped columns hold `{marker}`, how exports write NULL ({named}, in the "
            f"first {batch.height} rows); they would load as values (text `{marker}`, IDs "
            "of a bad format, unreadable dates and amounts)",
            f"add `null_values: ['{marker}']` at the top of the file (see its data dictionary)",
        )


def check_raw(specs: list[SourceSpec], raw_root: Path) -> list[Problem]:
    """Problems found by matching every spec against the files under ``raw_root``."""
    problems = Problems()
    for spec in (u for s in specs for u in assemble.units(s)):  # join parts: their own files
        files = expand_files(spec, raw_root)
        if not files:
            present = [
                p.relative_to(raw_root).as_posix() for p in raw_root.rglob("*") if p.is_file()
            ]
            near = nearest(spec.files[0], present)
            problems.add(
                spec.path,
                1,
                f"no file under {raw_root} matches {', '.join(spec.files)}",
                f"did you mean {near!r}?" if near else "add the export or correct `files:`",
            )
            continue
        for path in files:
            rel = path.relative_to(raw_root).as_posix()
            try:
                info, first = _read_first(spec, path)
            except InputFileError as exc:
                problems.add(spec.path, 1, f"cannot read {rel}: {exc}")
                continue
            if spec.sheets is None and spec.header_rows == 1:  # one header: cells c0.. = header
                check_cells(spec, rel, info.header, first, problems)
            heads = [(rel, info.header_row, info.header)]
            if spec.sheets is not None and info.parts:
                heads = [(f"{rel}#{p.name}", p.header_row, p.header) for p in info.parts]
            for where, header_row, header in heads:
                _mapping, missing = match_columns(spec, header)
                for fname, want, near in missing:
                    problems.add(
                        spec.path,
                        spec.field(fname).line,
                        f"field {fname!r}: column '{want}' not found in {where} (header row "
                        f"{header_row})",
                        f"the nearest header is '{near}': add it to `column:`"
                        if near
                        else "mark the field `optional: true`",
                    )
                have = {readers.norm_header(h) for h in header}
                for col in spec.duplicates_ignore:
                    if readers.norm_header(col) not in have:
                        near = nearest(col, [h for h in header if h])
                        problems.add(
                            spec.path,
                            1,
                            f"duplicates_ignore: column '{col}' not found in {where} (header "
                            f"row {header_row})",
                            f"the nearest header is '{near}'" if near else "drop it from the list",
                        )
                used = {readers.norm_header(a) for f in spec.fields for a in f.columns}
                used |= {
                    readers.norm_header(a)
                    for g in spec.unpivot
                    for c in g.values()
                    for a in c.columns
                }
                free = [h for h in header if h and readers.norm_header(h) not in used]
                for g, fname, want, line in assemble.unpivot_missing(spec, header):
                    near = nearest(want, free)
                    problems.add(
                        spec.path,
                        line,
                        f"unpivot group {g}: column '{want}' (field {fname}) not found in "
                        f"{where} (header row {header_row})",
                        f"the nearest unmapped header is '{near}': add it to the group"
                        if near
                        else "add the file's header name to the group",
                    )
            _check_origins(spec, rel, info, problems)
    return list(problems)


def _check_origins(spec: SourceSpec, rel: str, info: readers.ReadInfo, problems: Problems) -> None:
    """``from: path|sheet|title`` fields: the pattern must match this file (or each sheet)."""
    for f in spec.fields:
        if f.origin in ("path", "sheet", "title"):
            try:
                derive.origin_values(spec, rel, info, f.name)
            except InputFileError as exc:
                problems.add(spec.path, f.line, str(exc))


def validate_raw(paths: Mapping[str, Any]) -> list[Problem]:
    """Registered validator ``raw``: needs both ``sources`` and ``raw`` paths."""
    sources, raw = paths.get("sources"), paths.get("raw")
    if sources is None or raw is None:
        return []
    raw = Path(raw)
    if not raw.is_dir():
        return [Problem(str(raw), 1, "raw folder not found", "pass --raw DIR")]
    specs = parse_sources(sources, Problems())  # spec problems are reported by 'sources'
    return check_raw(specs, raw)


register_validator("raw", validate_raw)
