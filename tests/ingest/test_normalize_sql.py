"""The SQL fast paths (``crossmatch.normalize_sql``) agree with the Python normalizers.

For every normalizer with a fast path and every distinct ``params`` the sources use, the corpus
is the distinct raw cells of the sample county for the fields using it (read as ingestion reads
them, through ``crossmatch.ingest.readers``), variants of some of them (spaces, full-width,
lower-case ...) and hand-made awkward values. Wherever the fast path's ``ok`` holds, each output
(cast to the normalizer's DuckDB type, as ingestion does) must equal the Python normalizer's
output and Python must report no error. A fast path must also accept most of the sample's
distinct cells, so one that rejects everything fails too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

from crossmatch import normalize, normalize_sql
from crossmatch.idnumber import ID_CHECK_CHARS, ID_CHECK_WEIGHTS
from crossmatch.ingest import pipeline, readers
from crossmatch.ingest.pipeline import expand_files, match_columns
from crossmatch.spec import SourceSpec, load_sources

REPO = Path(__file__).resolve().parents[2]
RAW = REPO / "data/sample/raw"
SPECS = load_sources(REPO / "sources")

# normalizers whose fast path must accept most of the sample's distinct cells
MUST_COVER = {"id", "name", "code", "date", "amount", "period"}
MIN_SHARE = 0.5
_SCHEMA = {"i": pl.Int64, "v": pl.String}
EXTRA_PARAMS: list[tuple[str, dict[str, Any]]] = [
    ("date", {}),
    ("date", {"month": "end"}),
    ("date", {"null_values": ["至今", "2021-01", "20240305"]}),
    ("text", {"null_values": ["无", "/", "某某公司"]}),
    ("amount", {}),
    ("amount", {"min": 100, "max": 5000}),
    ("amount", {"unit": "wan", "min": -50000, "max": 1e6}),
    ("amount", {"unit": "fen"}),
]


def _key(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, ensure_ascii=False, default=str)


def _cases(only: set[str] | None = None) -> list[Any]:
    """(normalizer, params) for every fast path (or those in ``only``) and each distinct params
    the sources use."""
    seen: dict[tuple[str, str], tuple[str, dict[str, Any], str]] = {}
    for spec in SPECS:
        for f in spec.fields:
            if f.normalizer in normalize_sql.FAST_PATHS:
                k = (f.normalizer, _key(f.params))
                seen.setdefault(k, (f.normalizer, dict(f.params), f"{spec.id}.{f.name}"))
    for name in normalize_sql.FAST_PATHS:  # a fast path no source uses: hand-made values only
        if not any(n == name for n, _ in seen):
            seen[(name, _key({}))] = (name, {}, "unused")
    for name, params in EXTRA_PARAMS if only is None else ():  # options sources may not use
        seen.setdefault((name, _key(params)), (name, params, "extra"))
    return [
        pytest.param(name, params, id=name if not params else f"{name}[{where}:{_key(params)}]")
        for name, params, where in seen.values()
        if only is None or name in only
    ]


# ----------------------------------------------------------------------------- sample cells


def _read(spec: SourceSpec, path: Path) -> tuple[list[str], list[pl.DataFrame]]:
    """Header and wide batches (c0..) of one raw file, read as ingestion's readers read it."""
    encoding, use_iconv = spec.encoding, True
    for _ in range(3):
        info = readers.ReadInfo()
        try:
            fmt = spec.format_for(path)
            batches = list(pipeline._batches(spec, path, fmt, info, encoding, None, use_iconv))
        except readers.RetryWithEncoding as exc:
            use_iconv = not isinstance(exc, readers.RetryWithoutIconv) and use_iconv
            encoding = exc.encoding
            continue
        width = len(info.header)
        return info.header, [
            readers.widen(b, width) if "_fields" in b.columns else b for b in batches
        ]
    raise AssertionError(f"{path}: could not be read")


@pytest.fixture(scope="session")
def sample_cells() -> dict[tuple[str, str], set[str | None]]:
    """(normalizer, params key) -> the distinct raw cells of the sample county (none when
    the sample is not generated: the hand-made values are still checked)."""
    cells: dict[tuple[str, str], set[str | None]] = {}
    for spec in SPECS if RAW.is_dir() else ():
        for path in expand_files(spec, RAW):
            header, batches = _read(spec, path)
            mapping, _ = match_columns(spec, header)
            for f in spec.fields:
                idx = mapping[f.name]
                if idx is None or f.normalizer not in normalize_sql.FAST_PATHS:
                    continue
                c = cells.setdefault((f.normalizer, _key(f.params)), set())
                for b in batches:
                    c.update(b[f"c{idx}"].to_list())
    return cells


# ----------------------------------------------------------------------------- awkward values


def _id_check(s17: str) -> str:
    w = sum(int(c) * k for c, k in zip(s17, ID_CHECK_WEIGHTS, strict=True))
    return s17 + ID_CHECK_CHARS[w % 11]


def _fullwidth(s: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in s)


def _ids() -> list[str]:
    good = _id_check("34112219900101123")
    x_end = next(  # a valid ID whose check character is X
        i for i in (_id_check(f"3411221985061512{d}") for d in range(10)) if i.endswith("X")
    )
    wrong = good[:-1] + ("0" if good[-1] != "0" else "1")
    out = [
        good,
        x_end,
        x_end.lower(),
        wrong,
        good[:-1],
        good + "1",
        good[:6] + good[8:17],  # 15-digit legacy number
        "341122900101123",
        _fullwidth(good),
        " " + good,
        good + " ",
        "\u3000" + good,
        "\u00a0" + good,
        "\ufeff" + good,
        "'" + good,
        good + ".0",
        good[:9] + " " + good[9:],
        good.replace("1", "l", 1),
        "000000000000000000",
        "00000000000000000X",
    ]
    for birth in (
        "19850230",  # not a date
        "19000229",  # not a leap year
        "20000229",  # a leap year
        "18791231",  # before 1880
        "18800101",
        "21001231",
        "21010101",  # after 2100
        "19851301",
        "19851200",
        "00000000",
    ):
        for seq in ("123", "124"):  # odd and even sex digit
            out.append(_id_check("341122" + birth + seq))
    return out


AWKWARD: list[str | None] = [
    None,
    "",
    " ",
    "\u3000",
    "\u00a0",
    "\ufeff",
    "\n",
    "\t",
    "a\nb",
    "a\n",
    "\nA",
    "1\n",
    "张三\n",
    "x" * 5000,
    "1" * 400,
    "张" * 3000,
    "1" * 18,
    "1" * 13,
    "9" * 15,
    "9" * 16,
    "9" * 19,
    # dates
    "19850230",
    "2024-02-30",
    "2024-02-29",
    "2023-02-29",
    "20240229",
    "2024-3-5",
    "2024/3/5",
    "2024.3.5",
    "2024年3月5日",
    "2024-03-05 00:00:00",
    "2024-03-05T10:00",
    "1985123",
    "198512311",
    "12345678",
    "00000000",
    "99999999",
    "20241301",
    "2024-13-01",
    "2024-00-10",
    "2024-01-00",
    "20240100",
    "18791231",
    "1879-12-31",
    "18800101",
    "1880-01-01",
    "21001231",
    "2100-12-31",
    "21010101",
    "2101-01-01",
    "0001-01-01",
    "9999-12-31",
    "45356",
    "45356.0",
    "+2024-03-05",
    " 2024-03-05",
    "2024-03-05 ",
    "\u30002024-03-05",
    "２０２４-03-05",
    "2024-03-05\n",
    "2024—03—05",
    # month-only dates
    "2021.01",
    "2021.1",
    "2021-01",
    "2021/1",
    "2021年3月",
    "2021年03月",
    "202103",
    "202102",
    "202402",
    "2024-02",
    "2021-12",
    "202112",
    "202113",
    "202100",
    "187912",
    "188001",
    "210012",
    "210101",
    "2021.01.05",
    "至今",
    " 至今 ",
    # periods
    "2025-13",
    "202500",
    "202513",
    "2025-1",
    "2025-01",
    "202501",
    "2025-00",
    "0000-01",
    "2025/01",
    "2025.01",
    "2025年1月",
    "2025-001",
    "2025--01",
    "2025-01-15",
    "2025 01",
    "２０２５-01",
    # amounts and numbers
    "1,200.00",
    "1,200",
    "350元",
    "0.8万元",
    "0.8万",
    "￥50",
    "¥50",
    "007",
    "0",
    "00",
    "-5",
    "+5",
    "-0",
    "12.345",
    "12.3",
    "12.30",
    "12.",
    ".5",
    "0.5",
    "1e3",
    "1.0",
    "3.0",
    "3人",
    "999999999999.99",
    "999999999999",
    "9999999999999",
    "１２３",
    "12 345",
    "30%",
    "NaN",
    "inf",
    "100万元人民币",
    "人民币100万元",
    "1,000.00元",
    "100万",
    "-183.00",
    "100",
    "99.99",
    "5000",
    "5000.00",
    "5000.01",
    "4999.99",
    "100000000000",
    "100000000000.00",
    "100000000000.01",
    "10000000",
    "10000000.01",
    # codes
    "'6230123456789012345",
    "'6230",
    "6230123456789012.0",
    "6230123456789012.00",
    "12.0",
    "1.5",
    "abc-123",
    "AbC_12/3",
    "ab c",
    "ＡＢＣ１２３",
    "abc\u3000123",
    "皖MB6522",
    "皖mb6522",
    "341122-ja-001",
    "ß",
    "ǆ",
    "-",
    "_",
    "/",
    "'",
    "''",
    # names
    "张三",
    "張三",
    "陳",
    "王志強",
    "阿卜杜·热合曼",
    "阿卜杜.热合曼",
    "阿卜杜•热合曼",
    "阿卜杜・热合曼",
    "阿卜杜－热合曼",
    "·张三",
    "张三·",
    "张 三",
    " 张三",
    "张三 ",
    "张三\u3000",
    "\u3000张三",
    "\u00a0张三",
    "\ufeff张三",
    "张\u200b三",
    "\uf900",  # compatibility ideographs: NFKC changes them
    "李\uf9dc",
    "\ufa11",
    "\ufa0e",
    "\u2f00",  # Kangxi radical (NFKC -> 一)
    "\u3400",  # extension A
    "\U00020000",  # extension B
    "丶",
    "〇",
    "张三１",
    "ZHANG",
    "zhang san",
    "乾隆",
    "后",
    "後",
    "发",
    "髮",
    "干",
    "幹",
    "\u9fff",
    "\u9fa5",
    # enum-like
    "男",
    "女",
    "男性",
    " 男性",
    "男性 ",
    "男 性",
    "男性\u3000",
    "1",
    "2",
    "１",
    " 1",
    "成功",
    "成 功",
    " 成功",
    "发放成功",
    "失败",
    "success",
    "Success",
    "结婚",
    "结婚登记",
    "離婚",
    "按人",
    "按 户",
    # free text
    "某某公司",
    " 某某公司",
    "某某公司 ",
    "某某 公司",
    "\u00a0text",
    "text\u00a0",
    "a\u2028",
    "a\u0085",
    "(括号)",
    "（括号）",
    "~!",
    "a\u3000",
    *_ids(),
]


def _variants(values: list[str]) -> list[str]:
    """Awkward spellings of clean values: surrounding spaces, full-width, case, tails ..."""
    out = []
    for v in values:
        out += [
            " " + v,
            v + " ",
            "\u3000" + v,
            v + "\u3000",
            "\u00a0" + v,
            "\ufeff" + v,
            v + "\n",
            v.lower(),
            v.upper(),
            _fullwidth(v),
            "'" + v,
            v + ".0",
            v[:-1],
            v + "0",
            v[:1] + " " + v[1:],
        ]
    return out


def _corpus(params: dict[str, Any], sample: set[str | None] | None) -> list[str | None]:
    sample_values = sorted(v for v in sample or () if v is not None)
    keys = [str(k) for k in (params.get("map") or {})]
    values: list[str | None] = [*sample_values, *AWKWARD, *keys]
    # variants of every 50th sample value and of every enum key
    values += _variants(sample_values[::50] + keys)
    return list(dict.fromkeys(values))


# ----------------------------------------------------------------------------- the tests


def _sql_side(
    name: str, params: dict[str, Any], corpus: list[str | None]
) -> tuple[list[bool], dict[str, list[Any]]]:
    fast = normalize_sql.fast_path(name, "v", params)
    assert fast is not None
    types = normalize.get(name).outputs
    assert set(fast.outputs) == set(types), f"{name}: fast path outputs {sorted(fast.outputs)}"
    con = duckdb.connect()
    try:
        frame = pl.DataFrame({"i": range(len(corpus)), "v": corpus}, schema=_SCHEMA)
        con.register("_corpus", frame.to_arrow())
        con.execute("CREATE TABLE corpus AS SELECT i, CAST(v AS VARCHAR) AS v FROM _corpus")
        ok = f"coalesce({fast.ok}, false)"
        outs = ", ".join(
            f"CASE WHEN {ok} THEN CAST({fast.outputs[s]} AS {t}) END" for s, t in types.items()
        )
        rows = con.execute(f"SELECT {ok}, {outs} FROM corpus ORDER BY i").fetchall()
    finally:
        con.close()
    return [r[0] for r in rows], {s: [r[1 + j] for r in rows] for j, s in enumerate(types)}


def _same(a: Any, b: Any) -> bool:
    return (a is None and b is None) or (type(a) is type(b) and a == b)


@pytest.mark.parametrize(("name", "params"), _cases())
def test_fast_path_equals_python(name, params, sample_cells):
    sample = sample_cells.get((name, _key(params)))
    corpus = _corpus(params, sample)
    ok, sql_out = _sql_side(name, params, corpus)
    res = normalize.get(name)(pl.Series("v", corpus, dtype=pl.String), params)
    py_err = res.error.to_list()
    py_out = {s: res.columns[s].to_list() for s in sql_out}
    bad = []
    for i, v in enumerate(corpus):
        if not ok[i]:
            continue
        if py_err[i] is not None:
            bad.append(f"{v!r}: SQL ok but Python error {py_err[i]!r}")
        for s in sql_out:
            if not _same(sql_out[s][i], py_out[s][i]):
                bad.append(f"{v!r}: output {s!r} SQL {sql_out[s][i]!r} != Python {py_out[s][i]!r}")
    assert not bad, f"{name} {params}: {len(bad)} mismatches, e.g.\n" + "\n".join(bad[:20])
    assert any(ok), f"{name}: the fast path accepts none of {len(corpus)} values"


@pytest.mark.parametrize(("name", "params"), _cases(MUST_COVER))
def test_fast_path_covers_sample(name, params, sample_cells):
    """Ingestion sends the *distinct* values a fast path rejects to Python, so the share that
    matters is the share of distinct sample cells the fast path accepts."""
    if not RAW.is_dir():
        pytest.skip("sample county not generated")
    sample = sample_cells.get((name, _key(params)))
    values = [v for v in sample or () if v is not None]
    assert values, f"{name} {params}: no sample cells (the sample county should use it)"
    ok, _ = _sql_side(name, params, values)
    share = sum(ok) / len(values)
    assert share > MIN_SHARE, (
        f"{name} {params}: fast path accepts {share:.0%} of {len(values)} distinct sample cells"
    )
