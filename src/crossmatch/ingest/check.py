"""``crossmatch validate --raw``: check source files against the real exports' headers.

Registered as the ``raw`` validator of :func:`crossmatch.spec.validate_all`. For each source,
each glob must match a file and each mapped column must be in that file's header; a missing
column is reported at the field's line in the YAML with the nearest header of the file as the
fix. Only the first rows of each file are read.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

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
    aliases = {readers.norm_header(a) for f in spec.fields for a in f.columns}
    fmt = spec.format_for(path)
    info = readers.ReadInfo()
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
            next(readers.read_csv_batches(r), None)
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
            next(readers.read_csv_batches(r), None)
    elif fmt == "xlsx":
        next(
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
        next(readers.read_parquet_batches(path, info), None)
    else:
        raise InputFileError(f"{path}: unknown file type; set `format:` in {spec.path}")
    return info


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
                info = read_head(spec, path)
            except InputFileError as exc:
                problems.add(spec.path, 1, f"cannot read {rel}: {exc}")
                continue
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
