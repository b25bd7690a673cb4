import pytest

from crossmatch.idnumber import check_char, is_valid18, parse, to15, upgrade15
from crossmatch.text import normalize_name


def make(first17: str) -> str:
    return first17 + check_char(first17)


def test_known_check_character():
    # the GB 11643 worked example
    assert check_char("11010519491231002") == "X"


def test_upgrade_15_roundtrip():
    idn = make("34112219650312431")
    assert upgrade15(to15(idn)) == idn
    p = parse(to15(idn))
    assert p.status == "upgraded15" and p.canonical == idn


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (None, "missing"),
        ("", "missing"),
        ("abc", "bad_format"),
        ("341122196502304312", "bad_date"),
    ],
)
def test_parse_statuses(raw, status):
    assert parse(raw).status == status


def test_lower_x_fullwidth_and_float_artifacts():
    idn = make("11010519491231002")
    assert parse(idn.lower()).canonical == idn
    full = " ３４１１２２１９６５０３１２４３１" + check_char("34112219650312431")
    assert parse(full).status == "valid18"
    n = make("34112219650312431")
    if n[-1] != "X":
        assert parse(n + ".0").canonical == n


def test_single_digit_typo_breaks_checksum():
    idn = make("34112219650312431")
    typo = idn[:10] + str((int(idn[10]) + 1) % 10) + idn[11:]
    assert not is_valid18(typo)
    assert parse(typo).status in {"bad_checksum", "bad_date"}


def test_sex_and_birth():
    p = parse(make("34112219650312431"))
    assert p.sex == "男" and p.birth_date.isoformat() == "1965-03-12"


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        (" 張 偉 ", "张伟"),
        ("阿不都・热合曼", "阿不都·热合曼"),
        ("阿不都.热合曼", "阿不都·热合曼"),
        ("ｗａｎｇ", "wang"),
        ("", None),
        (None, None),
    ],
)
def test_normalize_name(raw, want):
    assert normalize_name(raw) == want
