"""A tiny synthetic county written straight into canonical ``src_*`` tables, with truth.

Independent of the project's generator on purpose: identity tests must not break when the
generator changes, and they need controlled damage (homophones, look-alikes, mistyped and
missing IDs, ghost payees, same-name different people).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import duckdb
import pandas as pd

from crossmatch import idnumber

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = ["伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳",
         "杰", "娟", "涛", "明", "超", "秀兰", "霞", "平", "刚", "桂英", "建国", "春梅",
         "志强"]  # fmt: skip
HOMO = {"张": "章", "王": "汪", "刘": "柳", "林": "琳", "伟": "玮", "明": "鸣", "军": "君",
        "徐": "许", "静": "婧", "平": "萍", "建": "健", "强": "墙"}  # fmt: skip
LOOK = {"己": "已", "王": "玉", "末": "未", "刘": "浏", "陈": "阵", "孙": "逊", "明": "朋",
        "军": "车", "涛": "祷", "梅": "海"}  # fmt: skip


@dataclass
class County:
    persons: pd.DataFrame
    truth: pd.DataFrame  # source_file,row,role,person_id
    noise: pd.DataFrame  # source_file,row,role,field,noise
    ghosts: set[str] = field(default_factory=set)
    typo_payees: list[tuple[str, int]] = field(default_factory=list)


def make_id(rng: random.Random, region: str = "341122") -> str:
    y = rng.randint(1935, 2010)
    m = rng.randint(1, 12)
    d = rng.randint(1, 28)
    first17 = f"{region}{y:04d}{m:02d}{d:02d}{rng.randint(0, 999):03d}"
    return first17 + idnumber.check_char(first17)


def typo(rng: random.Random, idn: str) -> str:
    while True:
        i = rng.choice([*range(0, 6), *range(14, 17)])
        s = idn[:i] + str((int(idn[i]) + rng.randint(1, 9)) % 10) + idn[i + 1 :]
        if not idnumber.is_valid18(s):
            return s


def damage_name(rng: random.Random, name: str) -> tuple[str, str]:
    for i, c in enumerate(name):
        if c in HOMO and rng.random() < 0.5:
            return name[:i] + HOMO[c] + name[i + 1 :], "name_homophone"
        if c in LOOK and rng.random() < 0.5:
            return name[:i] + LOOK[c] + name[i + 1 :], "name_lookalike"
    return name, ""


def _pcols(role: str, name: str | None, idn: str | None, id_raw: str | None) -> dict:
    status = "missing"
    if idn:
        status = "valid18"
    elif id_raw:
        status = idnumber.parse(id_raw).status
    return {
        f"{role}_name": name,
        f"{role}_name_raw": name,
        f"{role}_id": idn,
        f"{role}_id_raw": id_raw,
        f"{role}_id_status": status,
    }


def bad_check(rng: random.Random, idn: str) -> str:
    """The ID with a wrong check digit (the first 17 characters intact)."""
    good = idnumber.check_char(idn[:17])
    return idn[:17] + rng.choice([c for c in "0123456789X" if c != good])


def build(
    con: duckdb.DuckDBPyConnection, n: int = 600, seed: int = 3, bad_checks: float = 0.0
) -> County:
    """Write src_hukou, src_payment, src_assistance, src_payroll, src_shareholder into ``con``.

    ``bad_checks``: share of the registry's and the payments' intact ID cells written with a
    wrong check digit (status bad_checksum; drawn from a generator of its own, so the rest of
    the county is the same as without)."""
    rng = random.Random(seed)
    brng = random.Random(seed + 1000)

    def checked(idn: str, file: str, row: int, role: str) -> tuple[str | None, str]:
        """(canonical ID or None, raw cell) after the bad-check-digit damage."""
        if bad_checks and brng.random() < bad_checks:
            noise.append((file, row, role, "x", "id_checksum"))
            return None, bad_check(brng, idn)
        return idn, idn

    people = []
    for i in range(n):
        name = rng.choice(SURNAMES) + rng.choice(GIVEN)
        people.append(
            {
                "pid": make_id(rng),
                "name": name,
                "village": f"34112200{1 + i % 3}{1 + i % 4:03d}",
                "household_no": f"H{i // 3:05d}",
                "account": f"6217{rng.randint(10**11, 10**12 - 1)}",
            }
        )
    P = pd.DataFrame(people)
    truth, noise = [], []

    def lineage(src: str, file: str, row: int) -> dict:
        return {"_source": src, "_file": file, "_file_hash": "x", "_row": row, "_dup_of": None}

    # registry
    rows = []
    for i, p in P.iterrows():
        r = lineage("hukou", "hukou/hk.csv", i + 2)
        r |= _pcols("person", p["name"], *checked(p["pid"], "hukou/hk.csv", i + 2, "person"))
        r |= {"household_no": p["household_no"], "village_code": p["village"]}
        r |= {"cancel_reason": None, "cancel_date": None}
        rows.append(r)
        truth.append(("hukou/hk.csv", i + 2, "person", p["pid"]))
    _write(con, "src_hukou", rows)

    county = County(P, pd.DataFrame(), pd.DataFrame())
    # payments: 40% of residents, 3 months each, with damage
    rows = []
    row = 1
    payees = P.sample(frac=0.4, random_state=seed)
    for _, p in payees.iterrows():
        for _month in range(3):
            row += 1
            name, idn, id_raw = p["name"], p["pid"], p["pid"]
            kinds = []
            u = rng.random()
            if u < 0.12:
                idn, id_raw = None, None
                kinds.append("id_missing")
            elif u < 0.24:
                id_raw = typo(rng, p["pid"])
                idn = None
                kinds.append("id_typo")
                county.typo_payees.append(("finance/pay.csv", row))
            if rng.random() < 0.15:
                name, k = damage_name(rng, name)
                if k:
                    kinds.append(k)
            if idn is not None:
                idn, id_raw = checked(idn, "finance/pay.csv", row, "payee")
            r = lineage("payment", "finance/pay.csv", row)
            r |= _pcols("payee", name, idn, id_raw)
            r |= {"village_code": p["village"], "account": p["account"]}
            rows.append(r)
            truth.append(("finance/pay.csv", row, "payee", p["pid"]))
            noise += [("finance/pay.csv", row, "payee", "x", k) for k in kinds]
    # ghost payees: fabricated names, no ID, own account; paid twice each
    for g in range(8):
        gname = ["欧", "司马", "诸葛", "上官", "端木", "慕容", "皇甫", "令狐"][g] + "翠花"
        acct = f"6228{rng.randint(10**11, 10**12 - 1)}"
        for _ in range(2):
            row += 1
            r = lineage("payment", "finance/pay.csv", row)
            r |= _pcols("payee", gname, None, None)
            r |= {"village_code": "341122001001", "account": acct}
            rows.append(r)
            truth.append(("finance/pay.csv", row, "payee", f"GHOST-{g:06d}"))
            county.ghosts.add(f"GHOST-{g:06d}")
    _write(con, "src_payment", rows)

    # payroll: 10 staff in the civil-affairs offices, 2 from outside the county
    rows = []
    staff = P.sample(10, random_state=seed + 1).reset_index(drop=True)
    for i, p in staff.iterrows():
        r = lineage("payroll", "finance/payroll.xlsx", i + 2)
        town = "一镇" if i % 2 == 0 else "二镇"
        r |= _pcols("person", p["name"], p["pid"], p["pid"]) | {"unit_name": f"{town}民政办"}
        rows.append(r)
        truth.append(("finance/payroll.xlsx", i + 2, "person", p["pid"]))
    outsiders = [(make_id(rng, "340102"), "欧阳明月"), (make_id(rng, "340102"), "上官飞燕")]
    for j, (oid, oname) in enumerate(outsiders):
        r = lineage("payroll", "finance/payroll.xlsx", 12 + j)
        r |= _pcols("person", oname, oid, oid) | {"unit_name": "县财政局"}
        rows.append(r)
        truth.append(("finance/payroll.xlsx", 12 + j, "person", oid))
    _write(con, "src_payroll", rows)

    # assistance: applicant rows, handler = a staff member of the township
    rows = []
    for k, (_, p) in enumerate(P.sample(30, random_state=seed + 2).iterrows()):
        s = staff.iloc[k % 10]
        town = "一镇" if (k % 10) % 2 == 0 else "二镇"
        r = lineage("assistance", "civil/roster.xlsx", k + 3)
        drop = rng.random() < 0.3
        r |= _pcols("applicant", p["name"], None if drop else p["pid"], None if drop else p["pid"])
        r |= _pcols("member", None, None, None)
        r |= {"handler_name": s["name"], "handler_name_raw": s["name"]}
        r |= {"approver_name": None, "approver_name_raw": None}
        r |= {"township": town, "village_code": p["village"]}
        rows.append(r)
        truth.append(("civil/roster.xlsx", k + 3, "applicant", p["pid"]))
        truth.append(("civil/roster.xlsx", k + 3, "handler", s["pid"]))
        if drop:
            noise.append(("civil/roster.xlsx", k + 3, "applicant", "x", "id_missing"))
    _write(con, "src_assistance", rows)

    # shareholders: half without ID, names only
    rows = []
    for k, (_, p) in enumerate(P.sample(20, random_state=seed + 3).iterrows()):
        drop = k % 2 == 0
        r = lineage("shareholder", "market/sh.csv", k + 2)
        r |= _pcols("holder", p["name"], None if drop else p["pid"], None if drop else p["pid"])
        r |= {"credit_code": f"91341122MA{k:08d}"}
        rows.append(r)
        truth.append(("market/sh.csv", k + 2, "holder", p["pid"]))
        if drop:
            noise.append(("market/sh.csv", k + 2, "holder", "x", "id_missing"))
    _write(con, "src_shareholder", rows)

    county.truth = pd.DataFrame(truth, columns=["source_file", "row", "role", "person_id"])
    county.noise = pd.DataFrame(noise, columns=["source_file", "row", "role", "field", "noise"])
    return county


def _write(con: duckdb.DuckDBPyConnection, table: str, rows: list[dict]) -> None:
    df = pd.DataFrame(rows)
    con.register("_rows", df)
    con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM _rows")
    con.unregister("_rows")
