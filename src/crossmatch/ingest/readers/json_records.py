"""JSON exports (an API's answer): a list of records, or an object holding one; nested
objects flattened to dotted columns, one list of objects exploded to a row per element."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl

from crossmatch.errors import InputFileError
from crossmatch.ingest.readers.grid import XLSX_BATCH_ROWS
from crossmatch.ingest.readers.headers import norm_header
from crossmatch.ingest.readers.info import ReadInfo


def _json_records(doc: Any, records: str | None, path: Path) -> list[Any]:
    if records:
        node = doc
        for key in records.split("."):
            if not isinstance(node, dict) or key not in node:
                keys = ", ".join(map(str, doc)) if isinstance(doc, dict) else "none, it is a list"
                raise InputFileError(
                    f"{path}: no key {records!r} in the JSON (top-level keys: {keys}). Fix: "
                    f"correct `records:` in the source file."
                )
            node = node[key]
    elif isinstance(doc, dict):  # an API envelope {"code": 200, "data": [...]}: its one list
        lists = [k for k, v in doc.items() if isinstance(v, list)]
        if len(lists) != 1:
            raise InputFileError(
                f"{path}: the JSON is an object with {len(lists)} lists "
                f"({', '.join(lists) or 'none'}). Fix: name the list of records with "
                f"`records: <key>` in the source file."
            )
        node = doc[lists[0]]
    else:
        node = doc
    if not isinstance(node, list):
        raise InputFileError(
            f"{path}: the JSON records ({records or 'top level'}) are not a list. Fix: set "
            f"`records:` to the key of the list of records."
        )
    return node


def _json_cell(v: Any) -> str | None:
    import json  # lazy: stdlib

    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    if isinstance(v, dict | list):
        return json.dumps(v, ensure_ascii=False)
    return str(v)


def _flatten(obj: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            _flatten(v, f"{prefix}{k}.", out)
        return
    out[prefix[:-1]] = obj


def read_json_batches(
    path: Path,
    info: ReadInfo,
    *,
    records: str | None = None,
    aliases: set[str] | None = None,
) -> Iterator[pl.DataFrame]:
    """A JSON export (an API's answer): a list of records, or an object holding one
    (``records:`` names its key, dotted for a nested one). Nested objects give dotted column
    names (``applicant.name``); a list of objects that the mapping names a column through
    (``familyMembers.name``) is exploded, one row per element, with the record's other
    columns repeated (a record with an empty list gives one row with those columns empty).
    ``_row`` is the row's ordinal in file order (1-based): with a list exploded, the first
    element of the first record is 1, its second 2, ..."""
    import json  # lazy: stdlib

    raw = path.read_bytes()
    info.size = len(raw)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("gb18030", errors="strict")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputFileError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}). "
            f"Fix: re-export the file."
        ) from exc
    recs = _json_records(doc, records, path)
    wanted = {norm_header(a) for a in (aliases or set())}
    flat: list[dict[str, Any]] = []
    for r in recs:
        d: dict[str, Any] = {}
        _flatten(r if isinstance(r, dict) else {"value": r}, "", d)
        flat.append(d)
    # the lists of objects the mapping reaches into
    explode = sorted(
        {
            k
            for d in flat
            for k, v in d.items()
            if isinstance(v, list)
            and any(isinstance(e, dict) for e in v)
            and any(w.startswith(norm_header(k) + ".") for w in wanted)
        }
    )
    if len(explode) > 1:
        raise InputFileError(
            f"{path}: the mapping reads through {len(explode)} lists of objects "
            f"({', '.join(explode)}); one row per element works for one list only. Fix: map "
            f"each list in its own source file."
        )
    header: list[str] = []
    seen: set[str] = set()
    rows: list[dict[str, Any]] = []
    for d in flat:
        base = {k: v for k, v in d.items() if not explode or k != explode[0]}
        elems = d.get(explode[0]) if explode else None
        if explode and isinstance(elems, list) and elems:
            for e in elems:
                row = dict(base)
                sub: dict[str, Any] = {}
                _flatten(e if isinstance(e, dict) else {"value": e}, f"{explode[0]}.", sub)
                row.update(sub)
                rows.append(row)
        else:
            rows.append(base)
    numbers = list(range(1, len(rows) + 1))
    for row in rows:
        for k in row:
            if k not in seen:
                seen.add(k)
                header.append(k)
    if not rows:
        raise InputFileError(f"{path}: the JSON holds no records. Fix: re-export the file.")
    cols = {h: pl.Series([_json_cell(r.get(h)) for r in rows], dtype=pl.String) for h in header}
    info.header, info.header_row, info.encoding = header, 0, "json"
    df = pl.DataFrame(cols)
    out = df.select(
        pl.Series("_row", numbers, dtype=pl.Int32),
        pl.concat_str([pl.col(h).fill_null("") for h in header], separator="\x1f").alias("_line"),
        pl.lit(len(header), pl.Int32).alias("_nf"),
        *[pl.col(h).alias(f"c{i}") for i, h in enumerate(header)],
    )
    for off in range(0, out.height, XLSX_BATCH_ROWS):
        yield out.slice(off, XLSX_BATCH_ROWS)
