"""The county in other departments' layouts (crossmatch.synth.layouts, issue 17).

Small counties (1,500 persons, seed 11): ``--layout default`` is the plain generator byte for
byte; every layout is deterministic; every truth record points at an existing file and row
whose cells hold that person's name or ID (or the damage noise.csv names); and each layout
really contains the constructs it claims (UTF-16 BOM, sheets, month-only values ...).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import itertools
import re
from collections import defaultdict
from collections.abc import Iterator, Mapping
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import fastexcel
import pytest
from click.testing import CliRunner

from build_cache import cached_build, module_closure
from crossmatch.cli import main
from crossmatch.ingest.readers import two_row_header
from crossmatch.synth import generate
from crossmatch.synth.layouts import LAYOUTS, generate_layout, parse_date

PERSONS, SEED = 1500, 11
SMALL = 200  # byte-for-byte comparisons of two generations (the CLI's smallest county)
OTHER = [x for x in LAYOUTS if x != "default"]
SYNTH = module_closure("crossmatch.synth")  # the generator's files: what the counties depend on
# layouts with a mapping set (legacy's is written by a new user from its files alone, issue 17;
# it joins these tests when sources/legacy/ exists)
SOURCES = Path(__file__).resolve().parents[2] / "sources"
MAPPED = [x for x in OTHER if (SOURCES / x).is_dir()]


def _digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plain default county the layouts render (built once per generator version:
    tests/build_cache.py; read it, never write)."""
    return cached_build(tmp_path_factory, f"layout-base-{PERSONS}-{SEED}",
                        lambda out: generate(PERSONS, SEED, out), SYNTH)  # fmt: skip


class Counties(Mapping[str, Path]):
    """The county in every other layout, each built on first use, once per generator version
    (tests/build_cache.py; read, never write). Built one layout at a time, not all in one
    module fixture: the tests of different layouts spread over both xdist workers, and so
    do the builds of a cold cache."""

    def __init__(self, factory: pytest.TempPathFactory) -> None:
        self.factory = factory

    def __getitem__(self, layout: str) -> Path:
        if layout not in OTHER:
            raise KeyError(layout)

        def build(out: Path) -> None:
            generate_layout(PERSONS, SEED, out / layout, layout)

        name = f"layout-{layout}-{PERSONS}-{SEED}"
        return cached_build(self.factory, name, build, SYNTH) / layout

    def __iter__(self) -> Iterator[str]:
        return iter(OTHER)

    def __len__(self) -> int:
        return len(OTHER)


@pytest.fixture
def counties(tmp_path_factory: pytest.TempPathFactory) -> Counties:
    return Counties(tmp_path_factory)


class _HtmlRows(HTMLParser):
    """The <tr> rows of an HTML table (a web system's "Excel" export), cells as text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[list[str]] = []
        self.cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append("".join(self.cell).strip())
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def _html_table(blob: bytes) -> dict[int, list[str]]:
    m = re.search(rb"charset=([\w-]+)", blob[:1000])
    p = _HtmlRows()
    p.feed(blob.decode(m[1].decode() if m else "utf-8"))
    return {i + 1: r for i, r in enumerate(p.rows)}


def _json_rows(path: Path) -> dict[int, list[str]]:
    """An API dump flattened one row per nested family member (row 0: the dotted keys)."""
    import json

    out: dict[int, list[str]] = {}
    for obj in json.loads(path.read_text(encoding="utf-8"))["data"]:
        flat = {f"{k}.{kk}" if isinstance(v, dict) else k: vv
                for k, v in obj.items() if k != "familyMembers"
                for kk, vv in (v.items() if isinstance(v, dict) else [(None, v)])}  # fmt: skip
        for m in obj["familyMembers"]:
            row = flat | {f"familyMembers.{k}": v for k, v in m.items()}
            out.setdefault(0, list(row))
            out[len(out)] = ["" if v is None else str(v) for v in row.values()]
    return out


def read_sheet_rows(path: Path, sheet: str | None = None) -> dict[int, list[str]]:
    """Physical row number -> cells (as text), for CSV/TXT (any encoding), an xlsx / xls sheet,
    an HTML table saved as .xls (its <tr> rows) or a JSON API dump (one row per member)."""
    if path.suffix == ".json":
        return _json_rows(path)
    if path.suffix == ".xls" and path.read_bytes()[:5].lower() == b"<html":
        return _html_table(path.read_bytes())
    if path.suffix in (".xlsx", ".xls"):
        reader = fastexcel.read_excel(str(path))
        name = sheet if sheet is not None else reader.sheet_names[0]
        df = reader.load_sheet(name, header_row=None, dtypes="string").to_polars()
        return {i + 1: ["" if v is None else v for v in r] for i, r in enumerate(df.rows())}
    blob = path.read_bytes()
    if blob.startswith(b"\xff\xfe"):
        text, delim = blob.decode("utf-16"), "\t"
    else:
        try:
            text = blob.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = blob.decode("gb18030")
        delim = "," if path.suffix != ".txt" else max("\t|", key=text.split("\n", 1)[0].count)
    return {i + 1: r for i, r in enumerate(csv.reader(text.splitlines(), delimiter=delim))}


@functools.cache
def files_of(root: Path) -> Files:
    """One :class:`Files` per county folder, shared by the tests that read it (the folders are
    read-only builds, tests/build_cache.py; parsing the platform layout's HTML alone is 1 s)."""
    return Files(root)


class Files:
    """Cached access to a county's raw files by truth ``source_file`` (``path#sheet``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.cache: dict[str, dict[int, list[str]]] = {}

    def rows(self, source_file: str) -> dict[int, list[str]]:
        if source_file not in self.cache:
            rel, _, sheet = source_file.partition("#")
            self.cache[source_file] = read_sheet_rows(self.root / "raw" / rel, sheet or None)
        return self.cache[source_file]


_FULL_WIDTH = str.maketrans("０１２３４５６７８９Ｘｘ", "0123456789Xx")
_SPACE = re.compile(r"[\s\u3000]")


@functools.cache  # ~1.5 million cells per run, far fewer distinct ones
def _norm(s: str) -> str:
    return _SPACE.sub("", s.translate(_FULL_WIDTH)).upper()


def _truth(root: Path, name: str) -> list[dict[str, str]]:
    with open(root / "truth" / name, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


# --------------------------------------------------------------------------- default
def test_default_layout_is_the_plain_generator_byte_for_byte(tmp_path: Path) -> None:
    generate(SMALL, SEED, tmp_path / "plain")
    result = CliRunner().invoke(
        main,
        ["sample", "--layout", "default", "--persons", str(SMALL), "--seed", str(SEED),
         "--out", str(tmp_path / "cli")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert _digest(tmp_path / "plain") == _digest(tmp_path / "cli")


def test_unknown_layout_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["sample", "--layout", "nope", "--out", str(tmp_path)])
    assert result.exit_code != 0
    assert "monthly" in result.output


# generates each county twice (2-10 s a layout): one layout in the default tier, every other
# layout in the slow tier (`uv run pytest -m slow`); the default tier's
# test_every_truth_record_points_at_its_person and *_constructs still generate every layout
QUICK_DETERMINISM = "legacy"


@pytest.mark.parametrize(
    "layout",
    [x if x == QUICK_DETERMINISM else pytest.param(x, marks=pytest.mark.slow) for x in OTHER],
)
def test_layout_is_deterministic_per_seed(layout: str, tmp_path: Path) -> None:
    for name in ("a", "b"):
        result = CliRunner().invoke(
            main,
            ["sample", "--layout", layout, "--persons", str(SMALL), "--seed", str(SEED),
             "--out", str(tmp_path / name)],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert (tmp_path / "a" / "LAYOUT").read_text(encoding="utf-8").startswith(f"layout: {layout}")


@pytest.mark.slow  # generates a whole 1,500-person county in the monthly layout (~5 s);
# test_generator.py's test_same_seed_same_bytes_and_other_seed_differs checks another seed
# differs on the default layout in the default tier
def test_another_seed_gives_another_county(counties: dict[str, Path], tmp_path: Path) -> None:
    generate_layout(PERSONS, SEED + 1, tmp_path, "monthly")
    assert _digest(tmp_path) != _digest(counties["monthly"])


# --------------------------------------------------------------------------- truth
@pytest.mark.parametrize("layout", OTHER)
def test_every_truth_record_points_at_its_person(layout: str, counties: dict[str, Path]) -> None:
    root = counties[layout]
    files = files_of(root)
    persons = {p["person_id"]: p for p in _truth(root, "persons.csv")}
    noisy: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for n in _truth(root, "noise.csv"):
        noisy[(n["source_file"], n["row"], n["role"])].append(n["noise"])
    # the two-file roster: applicant / handler / approver come from the case roster (part)
    parts: dict[str, list[str]] = {}
    if layout == "monthly":
        case_rows = files.rows("civil/低保对象花名册.xlsx")
        parts = {cells[0]: cells for r, cells in case_rows.items() if r > 2}
    records = _truth(root, "records.csv")
    assert len(records) > 5000
    bad: list[str] = []
    for rec in records:
        rows = files.rows(rec["source_file"])
        row = int(rec["row"])
        assert row in rows, f"{rec}: no such row"
        cells = [_norm(str(c)) for c in rows[row]]
        if rec["source_file"] == "civil/低保家庭成员名单.csv" and rec["role"] != "member":
            cells += [_norm(str(c)) for c in parts[rows[row][0]]]
        p = persons[rec["person_id"]]
        if _norm(p["name"]) in cells or rec["person_id"] in cells:
            continue
        if rec["person_id"].startswith("GHOST") or noisy.get(
            (rec["source_file"], rec["row"], rec["role"])
        ):
            continue  # a ghost's ID is fabricated; a damaged cell is listed in noise.csv
        if any(c and _norm(p["name"]) in c for c in cells):
            continue  # 马冲村3组-style cells do not hold names; a name inside a cell is fine
        bad.append(f"{rec} -> {rows[row]}")
    assert not bad, f"{len(bad)} truth records whose row does not hold the person: {bad[:5]}"


@pytest.mark.parametrize("layout", OTHER)
def test_noise_names_a_column_of_the_file(layout: str, counties: dict[str, Path]) -> None:
    root = counties[layout]
    files = files_of(root)
    headers: dict[str, set[str]] = {}
    for n in _truth(root, "noise.csv"):
        f = n["source_file"]
        if f not in headers:
            rows = files.rows(f)
            first = list(rows.values())[:5]  # title rows, a one- or two-row header
            headers[f] = {c for r in first[:2] for c in r}
            headers[f] |= {c for a, b in itertools.pairwise(first) for c in two_row_header(a, b)}
            if f == "civil/低保家庭成员名单.csv":
                headers[f] |= set(files.rows("civil/低保对象花名册.xlsx")[2])
        assert n["field"] in headers[f], n


def test_planted_and_persons_are_those_of_the_default(
    counties: dict[str, Path], base: Path
) -> None:
    tmp_path = base
    for layout in OTHER:
        for name in ("planted.csv", "persons.csv"):
            assert (counties[layout] / "truth" / name).read_bytes() == (
                tmp_path / "truth" / name
            ).read_bytes()


# --------------------------------------------------------------------------- constructs
def _csv_header(path: Path) -> list[str]:
    return read_sheet_rows(path)[1]


def test_monthly_constructs(counties: dict[str, Path]) -> None:
    root = counties["monthly"]
    raw = root / "raw"
    months = sorted(p.name for p in (raw / "finance").glob("一卡通发放明细_2025??.csv"))
    assert len(months) == 12
    jan, dec = (
        _csv_header(raw / "finance/一卡通发放明细_202501.csv"),
        _csv_header(raw / "finance/一卡通发放明细_202512.csv"),
    )
    assert "发放状态" not in jan and "发放状态" in dec
    assert not {"所属期", "行政区划代码"} & set(jan)
    # first half: made payments only (no failed transfers without a status column)
    rows = read_sheet_rows(raw / "finance/一卡通发放明细_202512.csv")
    assert rows[max(rows)][0] == "合计"
    # village names, never codes, outside the registry; variants present
    cadre = read_sheet_rows(raw / "organization/村（社区）干部花名册.csv")
    assert "行政区划代码" not in cadre[1]
    villages = {r[3] for i, r in cadre.items() if i > 1}
    assert any(v.endswith("村民委员会") or v.endswith("居民委员会") for v in villages)
    assert "行政区划代码" in _csv_header(raw / "hukou/户籍人口信息.csv")
    farm = read_sheet_rows(raw / "agriculture/耕地地力保护补贴发放清册2025.xlsx")
    assert "年度" not in farm[1]
    assert any(re.search(r"\d组$", r[3] or "") for r in farm.values())
    # month-only terms and job starts
    starts = [r[5] for i, r in cadre.items() if i > 1]
    assert any(re.fullmatch(r"\d{4}\.\d{2}", s) for s in starts)
    assert any(re.fullmatch(r"\d{4}年\d{1,2}月", s) for s in starts)
    pay = read_sheet_rows(raw / "finance/财政供养人员信息.xlsx")
    assert pay[1][6] == "入职年月" and any(re.fullmatch(r"\d{6}", str(r[6])) for r in pay.values())
    # two files joined by 保障证号: every member's case is in the case roster
    cases = read_sheet_rows(raw / "civil/低保对象花名册.xlsx")
    assert cases[2][0] == "保障证号" and "花名册" in cases[1][0]
    members = read_sheet_rows(raw / "civil/低保家庭成员名单.csv")
    nos = {r[0] for i, r in cases.items() if i > 2}
    assert {r[0] for i, r in members.items() if i > 1} <= nos
    assert len(nos) == len([i for i in cases if i > 2])  # one row per case


def test_monthly_payments_without_status_hold_no_failed_transfer(
    counties: dict[str, Path], base: Path
) -> None:
    """The default export's failed first-half transfers are not in the status-less files."""
    tmp_path = base
    failed_h1 = 0
    for q in (1, 2):
        rows = read_sheet_rows(tmp_path / "raw" / f"finance/一卡通发放明细_2025Q{q}.csv")
        failed_h1 += sum(1 for i, r in rows.items() if i > 1 and len(r) > 9 and r[9] == "失败")
    note = (counties["monthly"] / "LAYOUT").read_text(encoding="utf-8")
    m = re.search(r"failed payments left out \(no 发放状态 column\): (\d+)", note)
    assert (int(m[1]) if m else 0) == failed_h1
    kept = sum(
        len(
            read_sheet_rows(counties["monthly"] / "raw" / f"finance/一卡通发放明细_2025{k:02d}.csv")
        )
        - 2
        for k in range(1, 7)
    )  # minus header and 合计
    default_h1 = 0
    for q in (1, 2):
        default_h1 += (
            len(read_sheet_rows(tmp_path / "raw" / f"finance/一卡通发放明细_2025Q{q}.csv")) - 1
        )
    assert kept == default_h1 - failed_h1


def test_month_only_terms_keep_every_case_overlap(counties: dict[str, Path]) -> None:
    """A cadre term written as months overlaps exactly the village's cases it overlapped."""
    root = counties["monthly"]
    cadre = read_sheet_rows(root / "raw" / "organization/村（社区）干部花名册.csv")
    month_only = [r for i, r in cadre.items() if i > 1 and not parse_date(r[5])]
    assert len(month_only) > 0.8 * (len(cadre) - 1)


def test_workbook_constructs(counties: dict[str, Path]) -> None:
    raw = counties["workbook"] / "raw"
    book = fastexcel.read_excel(str(raw / "civil/城乡低保特困救助对象花名册.xlsx"))
    assert set(book.sheet_names) <= {"农村低保", "城市低保", "特困"} and len(book.sheet_names) >= 2
    first = read_sheet_rows(raw / "civil/城乡低保特困救助对象花名册.xlsx", book.sheet_names[0])
    assert book.sheet_names[0] in first[1][0] and "救助类别" not in first[2]
    payroll = fastexcel.read_excel(str(raw / "finance/财政供养人员信息.xlsx")).sheet_names
    assert "行政" in payroll and "事业编制" in payroll
    books = sorted((raw / "finance").glob("惠民惠农补贴发放清册2025_*.xlsx"))
    assert len(books) >= 5
    titles = set()
    for b in books:
        reader = fastexcel.read_excel(str(b))
        assert set(reader.sheet_names) <= {"一季度", "二季度", "三季度", "四季度"}
        rows = read_sheet_rows(b, reader.sheet_names[0])
        titles.add(rows[1][0])
        assert "补贴项目" not in rows[2] and "项目" not in "".join(rows[2])
        assert rows[max(rows)][0] == "合计"
    joined = "".join(titles)
    for item in ("农村低保金", "城市低保金", "特困人员供养金"):
        assert item in joined
    std = read_sheet_rows(raw / "finance/补贴标准.xlsx")
    assert std[2][3:9] == ["1人", "2人", "3人", "4人", "5人", "6人及以上"]
    assert {r[0] for i, r in std.items() if i > 2} >= {"农村低保金", "城市低保金", "特困人员供养金"}
    long = read_sheet_rows(raw / "market/市场主体登记人员信息.csv")
    assert {r[8] for i, r in long.items() if i > 1 and len(r) > 8} >= {"法定代表人", "股东"}
    assert any(r[3].endswith("万元人民币") for i, r in long.items() if i > 1)
    assert not (raw / "market/企业登记信息.csv").exists()
    prop = read_sheet_rows(raw / "housing/不动产登记信息.csv")
    assert prop[1][2:4] == ["共有人", "共有人证件号码"]
    co = [r for i, r in prop.items() if i > 1 and r[2]]
    assert co
    recs = _truth(counties["workbook"], "records.csv")
    assert sum(1 for r in recs if r["role"] == "co_owner") == len(co)


def test_utf16_constructs(counties: dict[str, Path]) -> None:
    raw = counties["utf16"] / "raw"
    for rel in ("hukou/户籍人口信息.txt", "finance/一卡通发放明细_2025上半年.txt",
                "finance/一卡通发放明细_2025下半年.txt", "bank/代发账户信息.txt",
                "marriage/婚姻登记信息.txt", "police/机动车登记信息.txt"):  # fmt: skip
        blob = (raw / rel).read_bytes()
        assert blob.startswith(b"\xff\xfe"), rel
        assert "\t" in blob.decode("utf-16").splitlines()[0]
    hk = read_sheet_rows(raw / "hukou/户籍人口信息.txt")
    assert "性别代码" in hk[1]
    assert {r[hk[1].index("性别代码")] for i, r in hk.items() if i > 1} == {"1", "2"}
    h1 = read_sheet_rows(raw / "finance/一卡通发放明细_2025上半年.txt")
    h2 = read_sheet_rows(raw / "finance/一卡通发放明细_2025下半年.txt")
    assert "状态" not in h1[1] and "状态" in h2[1]
    assert {r[1] for i, r in h1.items() if i > 1 and len(r) > 1} <= {f"0{k}" for k in range(1, 7)}
    assert all(re.fullmatch(r"2025(0[1-6])", r[7]) for i, r in h1.items() if i > 1 and len(r) > 7)
    cadre = read_sheet_rows(raw / "organization/村（社区）干部花名册.csv")
    assert any(re.fullmatch(r"\d{4}年\d{1,2}月", r[6]) for r in cadre.values())
    noise = _truth(counties["utf16"], "noise.csv")
    assert (
        sum(1 for n in noise if n["source_file"].endswith(".txt") and n["noise"] == "id_space") > 20
    )


def test_township_constructs(counties: dict[str, Path]) -> None:
    root = counties["township"]
    files = sorted((root / "raw/finance").glob("*/*惠民惠农补贴资金发放表_2025年*月.csv"))
    towns = {p.parent.name for p in files}
    assert len(files) == 12 * len(towns) and len(towns) >= 2
    f = files[1]
    blob = f.read_bytes()
    with pytest.raises(UnicodeDecodeError):
        blob.decode("utf-8")
    rows = read_sheet_rows(f)
    assert rows[1][0].startswith(f.parent.name) and rows[2][-1] == "单位：元"
    assert rows[3][1] == "收款人" and rows[4][1:3] == ["姓名", "身份证号"]
    assert rows[max(rows)][0] == "合计"
    body = [r for i, r in rows.items() if 4 < i < max(rows) and len(r) == 12]
    assert all(re.fullmatch(r"\d{5}", r[9]) for r in body if r[9])  # Excel serials
    assert all(re.fullmatch(r"2025年\d{1,2}月", r[8]) for r in body if r[8])
    assert not any(re.search(r"\d{6}$", r[11]) for r in body)  # village names, no codes
    noise = _truth(root, "noise.csv")
    floats = [n for n in noise if n["noise"] == "id_float"]
    assert floats and all(n["field"] == "收款人/身份证号" for n in floats)
    allrows = {p.relative_to(root / "raw").as_posix(): read_sheet_rows(p) for p in files}
    for n in floats:
        assert re.fullmatch(r"3\.\d{5}E\+17", allrows[n["source_file"]][int(n["row"])][2])
    assert any(" " in r[1] for rs in allrows.values() for r in rs.values() if len(r) > 1)
    note = (root / "LAYOUT").read_text(encoding="utf-8")
    again = int(re.search(r"rows exported again next month: (\d+)", note)[1])
    assert again > 0


def test_platform_constructs(counties: dict[str, Path]) -> None:
    raw = counties["platform"] / "raw"
    roster = read_sheet_rows(raw / "civil/社会救助综合信息平台_低保特困对象名册.xlsx")
    assert roster[2][:2] == ["序号", "家庭信息"] and roster[3][5:8] == [
        "姓名",
        "证件类型",
        "证件号码",
    ]
    body = [r for i, r in roster.items() if i > 3]
    assert {r[6] for r in body} <= {"居民身份证", "其他", ""} and "居民身份证" in {
        r[6] for r in body
    }
    dates = [r[-2] for r in body if r[-2]]
    assert any(re.fullmatch(r"\d{5}", d) for d in dates)
    assert any(re.fullmatch(r"[０-９]{4}年[０-９]{1,2}月[０-９]{1,2}日", d) for d in dates)
    pays = sorted(raw.glob("finance/惠民惠农一卡通平台_发放明细导出_2025Q*.xlsx"))
    assert len(pays) == 4
    rows = read_sheet_rows(pays[0])
    assert two_row_header(rows[2], rows[3])[1:4] == [
        "补贴对象/姓名",
        "补贴对象/证件类型",
        "补贴对象/证件号码",
    ]
    assert all(re.fullmatch(r"2025\d{2}", r[6]) for i, r in rows.items() if i > 3 and r[6])


def test_legacy_constructs(counties: dict[str, Path]) -> None:
    root = counties["legacy"]
    raw = root / "raw"
    # payments: HTML tables saved as .xls, GBK under a <meta charset>
    pays = sorted((raw / "finance").glob("惠民惠农补贴资金发放明细_2025Q?.xls"))
    assert len(pays) == 4
    blob = pays[0].read_bytes()
    assert blob.startswith(b"<html") and b"charset=gbk" in blob
    with pytest.raises(UnicodeDecodeError):
        blob.decode("utf-8")
    rows = read_sheet_rows(pays[0])
    assert "发放明细表" in rows[1][0] and len(rows[1]) == 1
    assert rows[2][:4] == ["序号", "批次号", "项目名称", "收款人(身份证号)"]
    assert rows[max(rows)][0].startswith("制表人：") and rows[max(rows)][1].startswith("审核人：")
    body = [r for i, r in rows.items() if 2 < i < max(rows)]
    assert all(re.fullmatch(r"[^()]*(\(\d{17}[\dx]\))?|[^()]*\(.*\)", r[3]) for r in body)
    payees = [r[3] for rs in map(read_sheet_rows, pays) for r in rs.values() if len(r) > 3]
    assert any(p.endswith("x)") for p in payees) and not any(p.endswith("X)") for p in payees)
    dates = {r[8] for r in body if len(r) > 8}
    assert any(re.fullmatch(r"2025/\d{1,2}/\d{1,2}", d) for d in dates)
    assert any(re.fullmatch(r"2025\d{4}", d) for d in dates)
    noise = _truth(root, "noise.csv")
    assert any(n["noise"] == "id_lower_x" and n["field"] == "收款人(身份证号)" for n in noise)
    # BIFF workbooks: the OLE2 signature, date cells next to text dates, 张三(户主)
    for rel in ("finance/财政供养人员信息.xls", "agriculture/土地承包经营权信息.xls"):
        assert (raw / rel).read_bytes()[:8] == bytes.fromhex("d0cf11e0a1b11ae1"), rel
    pay = read_sheet_rows(raw / "finance/财政供养人员信息.xls")
    starts = [r[6] for i, r in pay.items() if i > 1]
    for pattern in (r"\d{4}-\d{2}-\d{2} 00:00:00", r"\d{4}/\d{1,2}/\d{1,2}", r"\d{8}"):
        assert any(re.fullmatch(pattern, s) for s in starts), pattern
    land = read_sheet_rows(raw / "agriculture/土地承包经营权信息.xls")
    assert len([c for c in land[1] if c]) == 1 and land[2][1] == "承包方代表姓名"
    assert any(r[1].endswith("(户主)") for r in land.values())
    assert land[max(land)][0].startswith("制表人：")
    # the roster as a JSON API dump: an envelope, nested applicant and members, epoch ms
    import json

    doc = json.loads((raw / "civil/低保特困救助对象_接口导出.json").read_text(encoding="utf-8"))
    assert doc["code"] == 200 and doc["total"] == len(doc["data"]) > 10
    first = doc["data"][0]
    assert set(first["applicant"]) == {"name", "idCard"} and first["familyMembers"]
    assert isinstance(first["startDate"], int) and first["startDate"] % 3_600_000 == 0
    assert not (raw / "civil/低保特困救助对象花名册.xlsx").exists()
    # apostrophe IDs and remark rows in a GBK CSV
    eld = read_sheet_rows(raw / "civil/高龄津贴发放名册.csv")
    assert all(r[1].startswith("'") for i, r in eld.items() if 1 < i < max(eld) - 1 and r[1])
    assert eld[max(eld)][0].startswith("制表人：")
    # what a department sends along, beside raw/
    assert "接口" in (root / "导出说明.txt").read_text(encoding="utf-8")


DEPARTMENT_DIRS = {"hukou", "death", "marriage", "civil", "finance", "organization",
                   "housing", "police", "market", "agriculture", "bank",
                   "education"}  # fmt: skip
# the data-sharing platform's dump files each table under its department's pinyin folder
DUMP_DIRS = {"gongan", "minzheng", "caizheng", "zuzhi", "zhujian", "shijian", "nongye",
             "yinhang", "jiaoyu"}  # fmt: skip


def test_other_layouts_render_every_default_source(counties: dict[str, Path]) -> None:
    """No department is lost: every default directory (in `dump`, every department's pinyin
    folder) still holds files."""
    for layout, root in counties.items():
        dirs = {p.parent.name for p in (root / "raw").rglob("*") if p.is_file()}
        assert dirs >= (DUMP_DIRS if layout == "dump" else DEPARTMENT_DIRS), layout


def _sources_yaml(layout: str) -> list[Path]:
    return sorted((Path(__file__).resolve().parents[2] / "sources" / layout).glob("*.yaml"))


@pytest.mark.parametrize("layout", MAPPED)
def test_every_layout_has_a_mapping_per_contract_source(layout: str) -> None:
    import yaml

    names: set[str] = set()
    for p in _sources_yaml(layout):
        doc: Any = yaml.safe_load(p.read_text(encoding="utf-8"))
        assert doc["source"] == p.stem
        names.add(p.stem)
    default = {p.stem for p in _sources_yaml("")}
    assert names == default


def _columns(spec: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """(field, header aliases) of every field read from a column that must be there."""
    out = []
    for name, f in (spec.get("fields") or {}).items():
        if isinstance(f, str):
            out.append((name, [f]))
        elif isinstance(f, list):
            out.append((name, [str(x) for x in f]))
        elif isinstance(f, dict) and "column" in f and not (f.get("optional") or "default" in f):
            col = f["column"]
            out.append((name, [col] if isinstance(col, str) else [str(x) for x in col]))
    return out


def _headers(path: Path) -> list[list[str]]:
    """The first rows of every sheet (or of the text file): the header is among them."""
    if path.suffix == ".xlsx":
        reader = fastexcel.read_excel(str(path))
        out = []
        for s in reader.sheet_names:
            rows = read_sheet_rows(path, s)
            first = [list(rows.get(i, [])) for i in (1, 2, 3)]
            out += first + [two_row_header(a, b) for a, b in itertools.pairwise(first)]
        return out
    rows = read_sheet_rows(path)
    first = [rows[i] for i in range(6) if i in rows]  # a title block, a two-row header
    return first + [two_row_header(a, b) for a, b in itertools.pairwise(first)]


def _check_part(root: Path, part: dict[str, Any], where: str) -> list[str]:
    problems = []
    paths = [p for g in part["files"] for p in sorted((root / "raw").glob(g))]
    if not paths:
        return [f"{where}: no file matches {part['files']}"]
    for path in paths:
        heads = _headers(path)
        for name, aliases in _columns(part):
            if not any(a in h for h in heads for a in aliases):
                problems.append(f"{where}: {path.name}: field {name}: none of {aliases}")
        for name, f in (part.get("fields") or {}).items():
            rel = path.relative_to(root / "raw").as_posix()
            if isinstance(f, dict) and f.get("from") == "path" and not re.search(f["pattern"], rel):
                problems.append(f"{where}: {path.name}: field {name}: pattern misses the path")
            if isinstance(f, dict) and f.get("from") == "title":
                titles = [h[0] for h in heads if h and len([c for c in h if c]) == 1]
                if not titles or not all(re.search(f["pattern"], t) for t in titles):
                    problems.append(f"{where}: {path.name}: field {name}: pattern misses {titles}")
            if isinstance(f, dict) and f.get("from") == "sheet" and "map" in f:
                missing = set(fastexcel.read_excel(str(path)).sheet_names) - set(f["map"])
                if f.get("normalizer") == "enum" and missing and name != "post_type":
                    problems.append(f"{where}: {path.name}: field {name}: sheets {missing}")
    for group in part.get("unpivot") or []:
        for name, col in group.items():
            if isinstance(col, str) and not any(col in h for p in paths for h in _headers(p)):
                problems.append(f"{where}: unpivot {name}: no column {col}")
    return problems


@pytest.mark.parametrize("layout", MAPPED)
def test_every_mapped_column_is_in_the_layouts_files(
    layout: str, counties: dict[str, Path]
) -> None:
    """The mapping set names real headers, path / title patterns match, every part exists
    (independent of the spec parser, so it holds before the new mapping keys are parsed)."""
    import yaml

    root = counties[layout]
    problems: list[str] = []
    claimed: set[Path] = set()
    for p in _sources_yaml(layout):
        spec = yaml.safe_load(p.read_text(encoding="utf-8"))
        problems += _check_part(root, spec, p.name)
        claimed |= {x for g in spec["files"] for x in (root / "raw").glob(g)}
        for k, part in enumerate(spec.get("join") or []):
            problems += _check_part(root, part, f"{p.name} join {k + 1}")
            claimed |= {x for g in part["files"] for x in (root / "raw").glob(g)}
    assert not problems, problems
    unclaimed = {p for p in (root / "raw").rglob("*") if p.is_file()} - claimed
    assert not unclaimed, f"files no mapping reads: {sorted(map(str, unclaimed))}"


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["default", *MAPPED])
def test_eval_layouts_meets_the_targets_on_a_small_county(layout: str, tmp_path: Path) -> None:
    """benchmarks/eval_layouts.py end to end on one small county per layout: every rule at
    recall >= 0.98 and precision >= 0.95, no trap flagged, identity F1 >= 0.995."""
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "eval_layouts.py"
    proc = subprocess.run(
        [sys.executable, str(script), "--layouts", layout, "--seeds", "11", "--persons", "3000",
         "--keep", str(tmp_path)],
        capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_month_rounding_is_refused_when_it_would_change_an_overlap() -> None:
    """A term from 2021-03-20 does not overlap a case that ended 2021-03-10; written as 2021.03
    it would (2021-03-01): such a cell keeps its day."""
    import datetime as dt

    from crossmatch.synth.layouts import MonthSafety, month_end

    d = dt.date
    assert month_end(d(2024, 2, 10)) == d(2024, 2, 29) and month_end(d(2025, 12, 5)) == d(
        2025, 12, 31
    )
    ended_before = [(d(2020, 1, 1), d(2021, 3, 10))]
    assert not MonthSafety._same(d(2021, 3, 20), None, d(2021, 3, 1), None, ended_before)
    starts_after = [(d(2026, 4, 20), None)]  # a term to 2026-04-10 vs a case from 04-20
    assert not MonthSafety._same(
        d(2021, 3, 20), d(2026, 4, 10), d(2021, 3, 1), d(2026, 4, 30), starts_after
    )
    unaffected = [(d(2019, 1, 1), d(2020, 12, 31)), (d(2022, 5, 1), None)]
    assert MonthSafety._same(
        d(2021, 3, 20), d(2026, 3, 31), d(2021, 3, 1), d(2026, 3, 31), unaffected
    )


def test_workbook_renders_a_firm_whose_only_row_is_short(base: Path, tmp_path: Path) -> None:
    """A firm whose one enterprise row is damaged (short: the generator's wrong field count)
    still has shareholders: the long table gets their rows with the firm's cells blank (seed 7
    at 8,000 persons crashed here with an IndexError)."""
    import shutil

    from crossmatch.synth.layouts import render

    src = tmp_path / "src"
    shutil.copytree(base, src)
    ent = src / "raw" / "market" / "企业登记信息.csv"
    lines = ent.read_text(encoding="utf-8").splitlines()
    sh = (src / "raw" / "market" / "企业股东出资信息.csv").read_text(encoding="utf-8")
    holders = {r[0] for r in csv.reader(sh.splitlines()[1:]) if r}
    code = next(r[0] for r in csv.reader(lines[1:]) if r and r[0] in holders)
    kept = [ln for ln in lines if not ln.startswith(code + ",")]
    row = next(r for r in csv.reader(lines[1:]) if r and r[0] == code)
    ent.write_text("\n".join([*kept, ",".join(row[:5])]) + "\n", encoding="utf-8")
    render("workbook", src, tmp_path / "out", SEED)
    out = list(csv.reader((tmp_path / "out/raw/market/市场主体登记人员信息.csv").read_text(
        encoding="utf-8").splitlines()))  # fmt: skip
    mine = [r for r in out[1:] if r[0] == code]
    assert [len(r) for r in mine if len(r) < len(out[0])] == [len(out[0]) - 3]  # stays short
    shareholders = [r for r in mine if len(r) == len(out[0]) and r[8] == "股东"]
    assert shareholders and all(r[2] == "" and r[4] == "" and r[6] for r in shareholders)


@pytest.mark.slow  # ~15 s of ingest on top of the module's counties
def test_township_ingest_counts_float_ids_and_marks_reexported_rows(
    counties: dict[str, Path], tmp_path: Path
) -> None:
    """The township payments through ingest (sources/township): every ID that went through
    Excel as a float loads bad_format (NULL ID, never another person's) and is counted in
    ingest_field_issue; every row exported again in the next month's file is marked _dup_of
    (the earlier month's row stays), so duplicate_payment sees one payment."""
    import shutil

    import duckdb

    from crossmatch.ingest import ingest

    root = counties["township"]
    src = tmp_path / "sources"
    src.mkdir()
    repo = Path(__file__).resolve().parents[2] / "sources" / "township"
    for name in ("payment.yaml", "hukou.yaml"):
        shutil.copy(repo / name, src / name)
    s = ingest(root / "raw", src, tmp_path / "w.duckdb")
    assert {r.status for r in s.results} <= {"loaded", "assembled"}, [r.message for r in s.results]
    floats = {(n["source_file"], int(n["row"])) for n in _truth(root, "noise.csv")
              if n["noise"] == "id_float"}  # fmt: skip
    note = (root / "LAYOUT").read_text(encoding="utf-8")
    again = int(re.search(r"rows exported again next month: (\d+)", note)[1])
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        got = con.execute(
            "SELECT _file, _row, payee_id, payee_id_status FROM src_payment "
            "WHERE payee_id_raw LIKE '%E+17'"
        ).fetchall()
        assert {(f, r) for f, r, _i, _s in got} == floats
        assert {(i, st) for _f, _r, i, st in got} == {(None, "bad_format")}
        counted = con.execute(
            "SELECT sum(cells) FROM ingest_field_issue WHERE field = 'payee_id' "
            "AND problem = 'bad_format'"
        ).fetchone()[0]
        assert counted >= len(floats)
        cross = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE of_file < file) FROM ingest_duplicate "
            "WHERE source = 'payment' AND of_file <> file"
        ).fetchone()
        assert cross == (again, again)
        marked = con.execute(
            "SELECT count(*) FROM src_payment p JOIN ingest_duplicate d ON d.file = p._file "
            "AND d.row = p._row WHERE p._dup_of IS NOT NULL AND d.of_file <> d.file"
        ).fetchone()[0]
        assert marked == again


def test_a_gbk_csv_writes_what_gbk_cannot_hold_as_a_question_mark(tmp_path: Path) -> None:
    """Excel's "CSV" on a Chinese Windows is GBK: a name's ・ (a middle-dot variant the noise
    writes) cannot be held and comes out as ``?``, counted. Strict (the default) refuses, as
    before (legacy at seed 67, 8,000 persons, failed here with a UnicodeEncodeError)."""
    from crossmatch.synth.layouts import Render

    r = Render(tmp_path / "src", tmp_path / "out", SEED, "legacy")
    rows: list[Any] = [(["买买提・热合曼", "100"], []), (["王伟", "80"], [])]
    r.write_csv("civil/x.csv", ["姓名", "金额"], rows, encoding="gbk", errors="replace")
    text = (tmp_path / "out/raw/civil/x.csv").read_bytes().decode("gbk")
    assert text.splitlines() == ["姓名,金额", "买买提?热合曼,100", "王伟,80"]
    assert r.counts["cells with a character gbk cannot hold"] == 1
    with pytest.raises(UnicodeEncodeError):
        r.write_csv("civil/y.csv", ["姓名", "金额"], rows, encoding="gbk")
