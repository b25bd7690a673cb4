"""Wave-2 normalizer options on small hand-made values: month-only dates, amounts with text,
units and bounds, village and township names, value shapes, and the spec keys for them."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from crossmatch import normalize
from crossmatch.spec.common import Problems
from crossmatch.spec.sources import parse_source_file


def run(name: str, values: list[str | None], **params):
    res = normalize.get(name)(pl.Series(values, dtype=pl.String), params)
    return res.columns[""].to_list(), res.error.to_list()


# ----------------------------------------------------------------------------- dates

MONTHS = ["2021.01", "2021.1", "2021-01", "2021/1", "2021年1月", "2021年01月", "202101"]


def test_month_only_dates_start_by_default():
    vals, errs = run("date", MONTHS)
    assert vals == [dt.date(2021, 1, 1)] * len(MONTHS)
    assert errs == [None] * len(MONTHS)
    assert run("date", ["2021年3月", "202103"], month="start")[0] == [dt.date(2021, 3, 1)] * 2


def test_month_only_dates_full_width_and_fen():
    vals, errs = run("date", ["２０２１年３月", "2021年3月份", "2021年3月5号"])
    assert vals == [dt.date(2021, 3, 1), dt.date(2021, 3, 1), dt.date(2021, 3, 5)]
    assert errs == [None] * 3


def test_month_only_dates_end_of_month():
    vals, errs = run("date", [*MONTHS, "2024.02", "202302", "2021年12月"], month="end")
    assert vals == [dt.date(2021, 1, 31)] * len(MONTHS) + [
        dt.date(2024, 2, 29),
        dt.date(2023, 2, 28),
        dt.date(2021, 12, 31),
    ]
    assert errs == [None] * (len(MONTHS) + 3)


def test_full_dates_are_not_months_and_month_option_leaves_them():
    full = ["20210315", "2021.01.05", "2021-01-05", "2021年1月5日", "44201", "2021/1/5 08:30"]
    want = [dt.date(2021, 3, 15)] + [dt.date(2021, 1, 5)] * 5
    for month in ("start", "end"):
        vals, errs = run("date", full, month=month)
        assert vals == want and errs == [None] * 6


def test_month_only_bad_values_are_errors():
    vals, errs = run("date", ["202113", "2021.13", "202100", "2021年0月", "187912", "21001"])
    assert vals[:5] == [None] * 5
    assert errs[:5] == [
        "cannot parse date '202113'",
        "cannot parse date '2021.13'",
        "cannot parse date '202100'",
        "cannot parse date '2021年0月'",
        "cannot parse date '187912'",
    ]
    # five digits stay an Excel serial day number, not a month
    assert vals[5] == dt.date(1899, 12, 30) + dt.timedelta(days=21001) and errs[5] is None


def test_null_values_are_empty_not_unreadable():
    vals, errs = run("date", ["至今", " 至今 ", "现任", "2021.03"], null_values=["至今", "现任"])
    assert vals == [None, None, None, dt.date(2021, 3, 1)]
    assert errs == [None] * 4
    assert run("date", ["至今"])[1] == ["cannot parse date '至今'"]  # only when listed
    assert run("text", ["无", "无人"], null_values=["无"])[0] == [None, "无人"]


def test_year_with_niandu():
    assert run("year", ["2024年度", "2024年", "2024", "2024.0"]) == ([2024] * 4, [None] * 4)
    assert run("year", ["2024年度补贴"])[1] == ["cannot parse year '2024年度补贴'"]


# ----------------------------------------------------------------------------- amounts


def test_amount_with_text_and_units():
    vals, errs = run(
        "amount",
        ["100万元人民币", "人民币100万元", "1,000.00元", "100万", "5000元整", "1.2亿元", "RMB 50"],
    )
    assert vals == [
        Decimal("1000000.00"),
        Decimal("1000000.00"),
        Decimal("1000.00"),
        Decimal("1000000.00"),
        Decimal("5000.00"),
        Decimal("120000000.00"),
        Decimal("50.00"),
    ]
    assert errs == [None] * 7


def test_amount_other_text_is_an_error():
    vals, errs = run("amount", ["100万美元", "约100", "100元/月", "一百元"])
    assert vals == [None] * 4
    assert all(e.startswith("cannot parse amount") for e in errs)


def test_amount_unit_wan_and_a_unit_in_the_cell():
    vals, errs = run("amount", ["50", "50万元", "50万", "3000元"], unit="wan")
    assert vals == [
        Decimal("500000.00"),
        Decimal("500000.00"),
        Decimal("500000.00"),
        Decimal("3000.00"),
    ]
    assert errs == [None] * 4


def test_amount_bounds_default_and_options():
    vals, errs = run("amount", ["-183.00", "999999999999.99", "0", "100000000000"])
    assert vals == [None, None, Decimal("0.00"), Decimal("100000000000.00")]
    assert errs[0] == "amount '-183.00' below the minimum 0 (field options min / max)"
    assert errs[1] == (
        "amount '999999999999.99' above the maximum 100,000,000,000 (field options min / max)"
    )
    assert errs[2:] == [None, None]
    vals, errs = run("amount", ["-183.00", "20001", "2万"], min=-500, max=20000)
    assert vals == [Decimal("-183.00"), None, Decimal("20000.00")]
    assert errs[0] is None and "above the maximum 20,000" in errs[1] and errs[2] is None


# ----------------------------------------------------------------------------- places

VILLAGES = {
    "马冲村村民委员会": "马冲村",
    "马冲村民委员会": "马冲村",
    "马冲村委会": "马冲村",
    "马冲村委": "马冲村",
    "马冲村3组": "马冲村",
    "马冲村三组": "马冲村",
    "马冲村十二组": "马冲村",
    "马冲村第3村民小组": "马冲村",
    "马冲村二队": "马冲村",
    "马冲": "马冲村",
    " 马 冲村 ": "马冲村",
    "马冲村（原清岭村）": "马冲村",
    "来安镇马冲村": "马冲村",
    "城关街道办事处马冲村村委会": "马冲村",
    "城东社区居委会": "城东社区",
    "城东社区居民委员会": "城东社区",
    "城东居委会": "城东社区",
    "城东社区": "城东社区",
    "新村": "新村",
    "望乡台村": "望乡台村",  # 乡 after one character: part of the name
    "王家镇村": "王家镇村",  # nothing left after 镇 but 村: part of the name
    "红星农场": "红星农场",
    "来安镇": "来安镇",
    "马冲村民小组": "马冲村民小组",  # a group without a number: kept, never 马冲村民小组村
    "341122100201": "341122100201",
}


def test_village_names():
    vals, errs = run("village", [*VILLAGES, None, "  "])
    assert dict(zip(VILLAGES, vals, strict=False)) == VILLAGES
    assert vals[-2:] == [None, None]
    assert errs == [None] * (len(VILLAGES) + 2)


def test_township_names():
    raw = ["来安镇人民政府", "来安镇政府", "城关街道办事处", "城关街道办", "城关办事处", "来安镇"]
    vals, errs = run("township", raw)
    assert vals == ["来安镇", "来安镇", "城关街道", "城关街道", "城关街道", "来安镇"]
    assert errs == [None] * 6


# ----------------------------------------------------------------------------- shapes


@pytest.mark.parametrize(
    ("value", "shape"),
    [
        ("2021.01.05", "9999.99.99"),
        ("2021年3月", "9999年9月"),
        ("100万元人民币", "999万元字字字"),
        ("341122199001011232", "999999999999999999"),
        ("11010519491231002x", "99999999999999999A"),
        ("张三", "字字"),
        ("张月", "字字"),  # 月 without a digit before it is a name character
        ("马冲村3组", "字字字9组"),
        ("#REF!", "#AAA!"),
        ("x" * 30, "A" * 24 + "…"),
        (None, "(empty)"),
    ],
)
def test_value_shape_never_shows_names_or_ids(value, shape):
    assert normalize.value_shape(value) == shape


# ----------------------------------------------------------------------------- spec keys

SPEC = """\
source: x
files: [a.csv]
fields:
  a: {column: A, normalizer: date, month: end, on_error: null, max_error_share: 0.2}
  b: {column: B, normalizer: amount, min: -100, max: 1e6, on_error: quarantine}
  c: {column: C, normalizer: amount, required: true}
  d: {column: D, normalizer: village, null_values: [无, /]}
"""


def _parse(tmp_path: Path, text: str):
    (tmp_path / "x.yaml").write_text(text, encoding="utf-8")
    problems = Problems()
    spec = parse_source_file(tmp_path / "x.yaml", problems)
    return spec, [str(p).split(": ", 1)[1] for p in problems]


def test_spec_keys_and_default_policy(tmp_path):
    spec, problems = _parse(tmp_path, SPEC)
    assert problems == []
    a, b, c, d = spec.fields
    assert (a.month, a.on_error, a.error_policy, a.max_error_share) == ("end", "null", "null", 0.2)
    assert a.params == {"month": "end"}
    assert (b.error_policy, b.params) == ("quarantine", {"min": -100, "max": "1e6"})
    assert (c.on_error, c.error_policy, c.max_error_share) == (None, "quarantine", 0.5)
    assert (d.on_error, d.error_policy, d.month) == (None, "null", "start")
    assert d.params == {"null_values": ["无", "/"]}


def test_spec_rejects_bad_options(tmp_path):
    _, problems = _parse(
        tmp_path,
        """\
source: x
files: [a.csv]
fields:
  a: {column: A, normalizer: date, month: middle, on_error: drop, max_error_share: 2}
  b: {column: B, normalizer: amount, required: true, on_error: null, min: abc}
  c: {column: C, normalizer: amount, min: 10, max: 5}
  d: {column: D, normalizer: text, month: end}
  e: {column: E, null_values: {a: b}}
""",
    )
    assert [p.split(";")[0] for p in problems] == [
        "field 'a': on_error must be null or quarantine, not 'drop'",
        "field 'a': max_error_share must be a number from 0 to 1, not 2",
        "field 'a': month must be start or end, not 'middle'",
        "field 'b': on_error: null contradicts required: true (an unreadable cell would leave "
        "the required field empty)",
        "field 'b': min must be a number of yuan (at most 1e15 in size), not 'abc'",
        "field 'c': min is greater than max",
        "unknown key 'month' in field 'd'",
        "field 'e': null_values must be a list of cell texts meaning empty",
    ]
