"""Normalizers: every format in the sample, and agreement with the reference helpers."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

import polars as pl
import pytest

from crossmatch import normalize
from crossmatch.idnumber import check_char, parse
from crossmatch.text import normalize_name


def run(name: str, values: list[str | None], **params):
    res = normalize.get(name)(pl.Series(values, dtype=pl.String), params)
    return {k: v.to_list() for k, v in res.columns.items()}, res.error.to_list()


def test_every_normalizer_is_documented():
    for n in normalize.NORMALIZERS.values():
        assert len(n.doc) > 40, f"normalizer {n.name} needs a docstring (it is the help text)"


def test_dates_every_sample_format_and_excel_serials():
    vals, errs = run(
        "date",
        [
            "2024-03-05",
            "2024/3/5",
            "20240305",
            "2024年3月5日",
            "2024-03-05 00:00:00",
            "45356",
            "45356.0",
            "2024.3.5",
            " 2024-03-05 ",
            None,
            "",
        ],
    )
    assert vals[""][:9] == [dt.date(2024, 3, 5)] * 9
    assert vals[""][9:] == [None, None]
    assert errs == [None] * 11


def test_bad_dates_are_errors_with_the_value():
    vals, errs = run("date", ["2025-13-45", "待核实", "#REF!"])
    assert vals[""] == [None, None, None]
    assert errs == [
        "cannot parse date '2025-13-45'",
        "cannot parse date '待核实'",
        "cannot parse date '#REF!'",
    ]


def test_periods():
    vals, errs = run("period", ["2025-01", "2025/1", "202501", "2025年1月", "2025-01-15", "45658"])
    assert vals[""] == ["2025-01"] * 6 and errs == [None] * 6
    assert run("period", ["2025年13月"])[1] == ["cannot parse month '2025年13月'"]


def test_amounts_separators_units_and_wan():
    vals, errs = run("amount", ["1,200.00", "350元", "0.8万元", "￥50", "12万", " 183.00 "])
    assert vals[""] == [
        Decimal("1200.00"),
        Decimal("350.00"),
        Decimal("8000.00"),
        Decimal("50.00"),
        Decimal("120000.00"),
        Decimal("183.00"),
    ]
    assert errs == [None] * 6
    assert run("amount", ["壹佰元", "-"])[1] == [
        "cannot parse amount '壹佰元'",
        "cannot parse amount '-'",
    ]
    # a field declared in 万元: bare numbers are 万元, a unit in the cell wins
    assert run("amount", ["50", "3000元"], unit="wan")[0][""] == [
        Decimal("500000.00"),
        Decimal("3000.00"),
    ]


def test_areas_mu_hectare_m2():
    vals, errs = run("area_mu", ["3.5", "3.5亩", "0.8公顷", "2000平方米"])
    assert vals[""] == [3.5, 3.5, 12.0, 3.0] and errs == [None] * 4
    assert run("area_m2", ["89.5", "89.5㎡", "1亩"])[0][""] == [89.5, 89.5, 666.666667]


def test_names_keep_original_and_match_reference():
    raw = ["张 伟", "張偉", "阿依古丽•买买提", "艾力.吐尔逊", "ＡＢ", "  ", None, "王　芳"]
    vals, errs = run("name", raw)
    assert errs == [None] * len(raw)
    assert vals[""] == ["张伟", "张伟", "阿依古丽·买买提", "艾力·吐尔逊", "AB", None, None, "王芳"]
    assert vals["_raw"][:5] == raw[:5]
    assert vals[""] == [normalize_name(r if r and r.strip() else None) for r in raw]


def _ids(n: int) -> list[str]:
    rnd = random.Random(5)
    out = []
    for _ in range(n):
        f17 = f"341122{rnd.randint(1930, 2010)}{rnd.randint(1, 12):02d}{rnd.randint(1, 28):02d}"
        f17 += f"{rnd.randint(0, 999):03d}"
        good = f17 + check_char(f17)
        out += [
            good,
            good.lower(),
            good[:6] + good[8:17],
            good[:17] + "0",
            " " + good,
            good.replace("1", "１"),
            good[:10],
            f"'{good}",
            good[:6] + "19991301" + good[14:],
        ]
    return out


def test_id_numbers_agree_with_reference_parse():
    raw = [*_ids(60), "", "abc", "341122900101123"]
    vals, errs = run("id", raw)
    for i, r in enumerate(raw):
        p = parse(r if r.strip() else None)
        assert vals[""][i] == p.canonical, r
        assert vals["_status"][i] == p.status, r
        assert vals["_birth_date"][i] == p.birth_date, r
        assert vals["_sex"][i] == p.sex, r
        assert vals["_region"][i] == p.region, r
    assert errs == [None] * len(raw)  # a bad ID never quarantines a row


def test_id_15_to_18_and_lower_x():
    vals, _ = run("id", ["341122900101123", "11010519491231002x"])
    assert vals[""] == ["341122199001011232", "11010519491231002X"]
    assert vals["_status"] == ["upgraded15", "valid18"]
    assert vals["_sex"] == ["男", "女"]
    assert vals["_birth_date"] == [dt.date(1990, 1, 1), dt.date(1949, 12, 31)]


@pytest.mark.parametrize(
    ("name", "values", "expected"),
    [
        ("int", ["3", "3.0", "3人", "1,200"], [3, 3, 3, 1200]),
        ("ratio", ["60.00%", "0.6", "60"], [0.6, 0.6, 0.6]),
        ("code", ["'6230123.0", " 9134 1122x "], ["6230123", "91341122X"]),
        ("year", ["2025", "2025年"], [2025, 2025]),
        ("text", ["  城关镇 ", ""], ["城关镇", None]),
    ],
)
def test_simple_normalizers(name, values, expected):
    vals, errs = run(name, values)
    assert vals[""] == expected
    assert errs == [None] * len(values)


def test_enum_keeps_or_rejects_unmapped():
    m = {"成功": "success", "失败": "failed"}
    assert run("enum", ["成功", "失败", "退回"], map=m)[0][""] == ["success", "failed", "退回"]
    vals, errs = run("enum", ["退回"], map=m, other="error")
    assert vals[""] == [None] and errs == ["cannot parse value (not in map) '退回'"]


def test_id_numbers_messy_sample_in_batches_agree_with_reference_parse():
    """The vectorised checksum and the remembered birth dates (across batches) give the same
    as the reference parser on thousands of damaged values: bad days, years out of range,
    15-digit numbers, stray characters, every digit position disturbed."""
    rnd = random.Random(11)
    raw: list[str] = []
    for _ in range(1500):
        f17 = f"{rnd.randint(110000, 659999)}{rnd.randint(1870, 2110)}"
        f17 += f"{rnd.randint(0, 13):02d}{rnd.randint(0, 32):02d}{rnd.randint(0, 999):03d}"
        good = f17 + check_char(f17)
        pos = rnd.randrange(18)
        digit = str(rnd.randrange(10))
        raw += [
            good,
            good[:pos] + digit + good[pos + 1 :],
            good[:6] + good[8:17],
            good[:pos] + rnd.choice("aX.-") + good[pos + 1 :],
        ]
    for half in (raw[: len(raw) // 2], raw[len(raw) // 2 :]):
        vals, _ = run("id", half)
        for i, r in enumerate(half):
            p = parse(r)
            got = (vals[""][i], vals["_status"][i], vals["_birth_date"][i], vals["_region"][i])
            assert got == (p.canonical, p.status, p.birth_date, p.region), r


def test_id_birth_date_cache_is_safe_across_threads():
    """Ingestion normalises two files at a time: the shared YYYYMMDD cache must not end up
    with a key twice (polars then refuses the mapping and the file fails). Without the lock
    this fails within a few rounds: threads find the same dates new and both append them."""
    import threading

    from crossmatch import normalize

    errors: list[BaseException] = []
    days = [dt.date(1950, 1, 1) + dt.timedelta(days=i) for i in range(20000)]

    def work(k: int) -> None:
        rng = random.Random(k)
        try:
            for _ in range(40):
                picked = rng.sample(days, 3000)
                ids = pl.Series([f"341122{d:%Y%m%d}123X" for d in picked])
                normalize.get("id")(ids, {})
        except BaseException as exc:
            errors.append(exc)

    normalize._DATES8 = normalize._DATES8.clear()
    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:1]
    assert normalize._DATES8["k"].is_duplicated().sum() == 0
