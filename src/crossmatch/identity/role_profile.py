"""How plausible a candidate person is for the role a mention plays (issue 17, identity).

A mention without a usable ID is weighed against every person it could be
(:meth:`crossmatch.identity.linker.Linker._pin_to_persons`). Name, village and account say who
it *looks like*; the record itself often says who it *cannot* be:

- age at the record's date: a cadre, a staff member, a vehicle owner, a spouse on a marriage
  record, a company's legal representative is an adult; a payee of an elderly allowance or a
  pension is old; a child is no payee of an adult's benefit;
- sex, where the role implies it (husband / wife);
- household head, for roles a household holds through its head (the applicant of an assistance
  case, the representative of a land contract, the recipient of a farmland subsidy);
- death timing: a person recorded dead well before the record (a registration, a contract) did
  not make it; a cremation or death record is of a person whose death the other records date
  close to it, when one of the candidates has such a death.

The profile only ever weighs a candidate *down* (log2 units off its pair weight): it never
creates a link. ``hard`` violations (impossible: born after the record, the wrong sex, a child
of 9 as a cadre) always cost :data:`HARD`; ``soft`` ones (unusual but possible: a payee of 16,
a contractor who is not the household head) cost :data:`SOFT` only when another candidate of
the same mention fits the profile, so that a lone candidate is weighed as it is (the
underage-allowance rule looks for exactly such payments).

Which roles have which profile is data (:data:`PROFILES`, keyed by canonical source and role;
the canonical field names are the data contract's, the same for every layout).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from crossmatch.identity import staff
from crossmatch.identity.linker import MAX_SUPPORT

log = logging.getLogger(__name__)

HARD = 12.0  # log2 units: impossible for the role
SOFT = 6.0  # log2 units: unusual for the role, when another candidate fits


@dataclass(frozen=True)
class Profile:
    """What a role implies about its person. Ages are whole years at the record date."""

    date: tuple[str, ...] = ()  # canonical date columns of the source, first present wins
    hard_min_age: float | None = None
    soft_min_age: float | None = None
    soft_max_age: float | None = None
    sex: str | None = None  # '男' / '女'
    head: bool = False  # held through the household head (soft)
    death_event: bool = False  # the record is of the person's death (cremation, death)
    item: str | None = None  # a column naming the benefit (payments): see ITEM_MIN_AGE
    # the person holds this (source, role) too, on a row with a valid ID (soft): a farmland
    # subsidy is paid to the household's land contractor
    holds: tuple[str, str] | None = None
    # held once per person (and year of the record) in this source (soft): a household has one
    # land contract, so a candidate who holds one already on a row with a valid ID is unusual
    once: bool = False
    # staff: the person is on a payroll or cadre roster (a row with a valid ID), else *hard*
    staff: bool = False
    # a free-text address of the record (a property's location); where it names a township
    # and the candidate's registry address names another, the candidate is unusual (soft)
    place: str | None = None


PROFILES: dict[tuple[str, str], Profile] = {
    ("payment", "payee"): Profile(("period", "pay_date"), hard_min_age=0.0, item="item"),
    ("assistance", "applicant"): Profile(("start_date",), 0.0, 16.0, head=True),
    ("assistance", "member"): Profile(("start_date",), hard_min_age=0.0),
    ("assistance", "handler"): Profile(
        ("start_date",), hard_min_age=14.0, soft_min_age=18.0, staff=True
    ),
    ("assistance", "approver"): Profile(
        ("start_date",), hard_min_age=14.0, soft_min_age=18.0, staff=True
    ),
    ("elderly", "person"): Profile(("start_month",), 0.0, 60.0),
    ("cadre", "cadre"): Profile(
        ("term_start",), hard_min_age=14.0, soft_min_age=18.0, soft_max_age=75.0
    ),
    ("cadre", "person"): Profile(
        ("term_start",), hard_min_age=14.0, soft_min_age=18.0, soft_max_age=75.0
    ),
    ("payroll", "person"): Profile(
        ("start_date",), hard_min_age=14.0, soft_min_age=18.0, soft_max_age=65.0
    ),
    ("school_staff", "person"): Profile((), hard_min_age=14.0, soft_min_age=18.0),
    ("land_contract", "contractor"): Profile(
        (), hard_min_age=14.0, soft_min_age=18.0, head=True, once=True
    ),
    ("farmland_subsidy", "person"): Profile(
        ("year",),
        hard_min_age=14.0,
        soft_min_age=18.0,
        head=True,
        once=True,
        holds=("land_contract", "contractor"),
    ),
    # a minor may own a home (inherited, a gift): no soft minimum
    ("property", "owner"): Profile(("reg_date",), hard_min_age=0.0, place="location"),
    ("property", "co_owner"): Profile(("reg_date",), hard_min_age=0.0, place="location"),
    ("vehicle", "owner"): Profile(("reg_date",), hard_min_age=14.0, soft_min_age=18.0),
    ("enterprise", "legal_rep"): Profile(("established",), hard_min_age=14.0, soft_min_age=18.0),
    ("shareholder", "holder"): Profile((), hard_min_age=0.0, soft_min_age=18.0),
    ("marriage", "husband"): Profile(("reg_date",), hard_min_age=14.0, soft_min_age=18.0, sex="男"),
    ("marriage", "wife"): Profile(("reg_date",), hard_min_age=14.0, soft_min_age=18.0, sex="女"),
    ("bank_account", "holder"): Profile(("opened",), hard_min_age=0.0),
    ("proxy_filing", "agent"): Profile(("filed_date",), hard_min_age=14.0, soft_min_age=18.0),
    ("relative_filing", "cadre"): Profile(("filed_date",), hard_min_age=14.0, soft_min_age=18.0),
    ("cremation", "person"): Profile(("cremation_date",), hard_min_age=0.0, death_event=True),
    ("death", "person"): Profile(("death_date",), hard_min_age=0.0, death_event=True),
}
# payments: the benefit's name -> the soft minimum age of its payee (first match wins);
# a benefit for children or disabled persons may be paid in the child's name
ITEM_MIN_AGE: tuple[tuple[str, float | None], ...] = (
    ("孤儿", None), ("儿童", None), ("助学", None), ("学生", None), ("残疾", None),
    ("高龄", 60.0), ("养老", 50.0), ("", 18.0),
)  # fmt: skip
# (source|role) of the rosters a staff role's person is on
STAFF_ROLES = ("payroll|person", "cadre|cadre", "cadre|person", "school_staff|person")
DEATH_BEFORE_DAYS = 60  # a cremation / death record follows the death within this many days
DEATH_AFTER_DAYS = 7
DEAD_BEFORE_DAYS = 31  # a registration this long after a recorded death is not the person's
# an age limit the county's own ID-bearing rows of the role break (at least this many rows and
# this share of them) is weighed by what those rows measure, not by HARD / SOFT: see
# :func:`measured_limits`
MEASURE_MIN_ROWS = 30
MIN_BREAKS = 3
BREAK_SHARE = 0.005
MIN_COST = 1.0  # log2 units: a limit measured weaker than this is no evidence at all
PAIR_CHUNK = 1_000_000  # (mention profile row x candidate) rows weighed at a time
_U_DATES = 5000  # record dates sampled to measure how often a random registered person breaks it
LIMITS = ("hard_min", "soft_min", "soft_max")


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {
        r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
    }


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    rows = con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE table_name = ?", [table]
    ).fetchall()
    return {r[0] for r in rows}


def _date_sql(col: str) -> str:
    """A canonical date column as a DATE: a date, a ``YYYY-MM`` / ``YYYYMM`` month, a year."""
    c = f"CAST({col} AS VARCHAR)"
    return (
        f"coalesce(TRY_CAST({c} AS DATE), try_strptime({c}, '%Y-%m')::DATE, "
        f"try_strptime({c}, '%Y%m')::DATE, "
        f"CASE WHEN regexp_full_match({c}, '(19|20)\\d\\d') "
        f"THEN make_date(CAST({c} AS INTEGER), 7, 1) END)"
    )


def build_mention_profiles(con: duckdb.DuckDBPyConnection, mentions: str = "_fz") -> pd.DataFrame:
    """Per mention of ``mentions`` (source, file, row, role, gkey) with a profile: its record
    date and item. One row per mention; columns gkey, source, role, rec_date, item."""
    tables = _tables(con)
    have = con.execute(f"SELECT DISTINCT source, role FROM {mentions}").fetchall()
    parts = []
    for source, role in have:
        prof = PROFILES.get((source, role))
        table = f"src_{source}"
        if prof is None or table not in tables:
            continue
        cols = _columns(con, table)
        date_col = next((c for c in prof.date if c in cols), None)
        date = _date_sql(f"s.{date_col}") if date_col else "NULL::DATE"
        item = f"CAST(s.{prof.item} AS VARCHAR)" if prof.item and prof.item in cols else "NULL"
        place = f"CAST(s.{prof.place} AS VARCHAR)" if prof.place and prof.place in cols else "NULL"
        # the role it needs held may be held on a row without a usable ID: an ID-less row of
        # that role with the mention's name (and village, where both have one)
        open_hold = "false"
        if prof.holds and {"name", "village_code"} <= _columns(con, mentions):
            open_hold = f"""EXISTS (SELECT 1 FROM person_mention x
                WHERE x.source = '{prof.holds[0]}' AND x.role = '{prof.holds[1]}'
                    AND x.id IS NULL AND x.name = f.name
                    AND (x.village_code IS NULL OR f.village_code IS NULL
                         OR x.village_code = f.village_code))"""
        parts.append(
            f"""SELECT f.gkey, f.source, f.role, {date} AS rec_date, {item} AS item,
                {place} AS place, {open_hold} AS open_hold
            FROM {mentions} f JOIN {table} s ON s._file = f.file AND s._row = f.row
            WHERE f.source = '{source}' AND f.role = '{role}'"""
        )
    if not parts:
        return pd.DataFrame(
            columns=["gkey", "source", "role", "rec_date", "item", "place", "open_hold"]
        )
    out = con.execute(" UNION ALL ".join(parts)).df()
    out["place"] = township_in(out["place"], staff.township_names(con))
    # a node's monthly payments differ in their month only: one row per distinct profile
    return out.drop_duplicates(ignore_index=True)


def township_in(text: pd.Series, towns: list[str]) -> pd.Series:
    """The township name a free text (an address) contains: the longest of ``towns`` found
    in it, None where none is (or two unrelated ones are)."""
    by_len = sorted(towns, key=len, reverse=True)

    def one(x: object) -> str | None:
        if not isinstance(x, str) or not x:
            return None
        hit = [t for t in by_len if t in x]
        hit = [t for t in hit if not any(t != u and t in u for u in hit)]
        return hit[0] if len(hit) == 1 else None

    return text.map(one).astype(object)


def candidate_facts(con: duckdb.DuckDBPyConnection, ids: list[str]) -> pd.DataFrame:
    """Per valid ID: birth date and sex (from the ID), recorded death, household head."""
    tables = _tables(con)
    df = pd.DataFrame({"id": pd.Series(ids, dtype=object)}).drop_duplicates()
    con.register("_rp_ids", df)
    try:
        head = "NULL::BOOLEAN"
        join = ""
        if "src_hukou" in tables and {"relation_to_head"} <= _columns(con, "src_hukou"):
            join = """LEFT JOIN (SELECT m.id, bool_or(trim(CAST(h.relation_to_head AS VARCHAR))
                    IN ('户主', '本人')) AS head
                FROM person_mention m JOIN src_hukou h ON m.source = 'hukou'
                    AND h._file = m.file AND h._row = m.row
                SEMI JOIN _rp_ids q ON q.id = m.id
                WHERE m.id IS NOT NULL AND h.relation_to_head IS NOT NULL GROUP BY m.id) hd
                ON hd.id = i.id"""
            head = "hd.head"
        death = "NULL::DATE"
        djoin = ""
        if "_id_death" in tables or _has_temp(con, "_id_death"):
            djoin = "LEFT JOIN _id_death dd ON dd.id = i.id"
            death = "dd.death"
        addr = "NULL::VARCHAR"
        if "src_hukou" in tables and "address" in _columns(con, "src_hukou"):
            join += """ LEFT JOIN (SELECT m.id, min(CAST(h.address AS VARCHAR)) AS address
                FROM person_mention m JOIN src_hukou h ON m.source = 'hukou'
                    AND h._file = m.file AND h._row = m.row
                SEMI JOIN _rp_ids q ON q.id = m.id
                WHERE m.id IS NOT NULL GROUP BY m.id) ad ON ad.id = i.id"""
            addr = "ad.address"
        held = [f"{src}|{role}" for (src, role), p in PROFILES.items() if p.once]
        held += [f"{p.holds[0]}|{p.holds[1]}" for p in PROFILES.values() if p.holds]
        held += list(STAFF_ROLES)
        held_sql = ", ".join(f"'{h}'" for h in sorted(set(held))) or "NULL"
        out = con.execute(
            f"""WITH roles AS (
                SELECT m.id, list(DISTINCT m.source || '|' || m.role) AS held
                FROM person_mention m SEMI JOIN _rp_ids i ON i.id = m.id
                WHERE m.source || '|' || m.role IN ({held_sql}) GROUP BY m.id)
            SELECT i.id, coalesce(r.held, []) AS held, {addr} AS address,
                try_strptime(substr(i.id, 7, 8), '%Y%m%d')::DATE AS birth,
                CASE WHEN try_cast(substr(i.id, 17, 1) AS INTEGER) % 2 = 1 THEN '男' ELSE '女' END
                    AS sex, {head} AS head, {death} AS death
            FROM _rp_ids i LEFT JOIN roles r ON r.id = i.id {join} {djoin}"""
        ).df()
    finally:
        con.unregister("_rp_ids")
    out["home"] = township_in(out.pop("address"), staff.township_names(con))
    return out


def _has_temp(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(
        con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [name]).fetchall()[
            0
        ][0]
    )


def _item_min_age(item: object) -> float | None:
    s = "" if item is None or (isinstance(item, float) and np.isnan(item)) else str(item)
    for key, age in ITEM_MIN_AGE:
        if key in s:
            return age
    return None


def _age(birth: pd.Series, at: pd.Series) -> np.ndarray:
    b = pd.to_datetime(birth, errors="coerce")
    a = pd.to_datetime(at, errors="coerce")
    return ((a - b).dt.days / 365.25).to_numpy(dtype=float, na_value=np.nan)


def violations(
    pairs: pd.DataFrame,
    asof: pd.Timestamp | None = None,
    costs: dict[tuple[str, str, str], float] | None = None,
) -> pd.DataFrame:
    """Per (mention profile x candidate) row: ``hard`` and ``soft`` violations, ``fit`` (the
    candidate's recorded death dates the mention's death event), and what each costs
    (``hard_cost``, ``soft_cost``, log2 units).

    ``pairs`` columns: source, role, rec_date, item (the mention) and birth, sex, head, death
    (the candidate). A mention without a record date is checked at ``asof`` for minimum ages
    (the latest record date: a person too young then was too young before). ``costs``: (source,
    role, limit) -> log2 units for the age limits the county's records overrule
    (:func:`measured_limits`); a limit measured below :data:`MIN_COST` is no violation."""
    n = len(pairs)
    if n == 0:
        return pd.DataFrame(
            {"hard": [], "soft": [], "fit": [], "hard_cost": [], "soft_cost": []}
        ).astype({"hard": bool, "soft": bool, "fit": bool, "hard_cost": float, "soft_cost": float})
    costs = costs or {}

    def cost(limit: str, default: float) -> np.ndarray:
        return np.array([costs.get((a, b, limit), default) for a, b in keys], dtype=float)

    keys = list(zip(pairs["source"], pairs["role"], strict=True))
    profs = [PROFILES.get(k) for k in keys]

    def attr(name: str, default: object = np.nan) -> np.ndarray:
        return np.array(
            [default if p is None or getattr(p, name) is None else getattr(p, name) for p in profs],
            dtype=object,
        )

    has = np.array([p is not None for p in profs])
    hard_min = attr("hard_min_age").astype(float)
    soft_min = attr("soft_min_age").astype(float)
    soft_max = attr("soft_max_age").astype(float)
    want_sex = attr("sex", None)
    head_role = attr("head", False).astype(bool)
    death_event = attr("death_event", False).astype(bool)
    dated_role = np.array([p is not None and bool(p.date) for p in profs])
    by_item = np.array([p is not None and p.item is not None for p in profs])
    if by_item.any():
        ages = pd.Series(pairs["item"].to_numpy(dtype=object)[by_item]).map(_item_min_age)
        soft_min[by_item] = ages.to_numpy(dtype=float, na_value=np.nan)

    rec = pd.to_datetime(pairs["rec_date"], errors="coerce")
    dated = rec.notna().to_numpy()
    at = rec.fillna(asof) if asof is not None else rec
    age = _age(pairs["birth"], at)
    death = pd.to_datetime(pairs["death"], errors="coerce")
    ddays = (rec - death).dt.days.to_numpy(dtype=float, na_value=np.nan)
    sex = pairs["sex"].to_numpy(dtype=object)
    head = pairs["head"].astype("boolean").to_numpy(dtype=object, na_value=None)
    c_hard_min, c_soft_min, c_soft_max = (
        cost("hard_min", HARD), cost("soft_min", SOFT), cost("soft_max", SOFT)
    )  # fmt: skip
    c_soft_min[by_item] = SOFT  # a benefit's own minimum age is not measured per role
    with np.errstate(invalid="ignore"):
        known_age = ~np.isnan(age)
        # born after the record: dated records only (an undated one is checked at asof, and
        # a minimum of 0 says nothing there)
        young = known_age & (age < hard_min) & (dated | (hard_min > 0)) & (c_hard_min >= MIN_COST)
        hard_cost = np.where(young, c_hard_min, 0.0)
        soft_young = known_age & (age < soft_min) & (c_soft_min >= MIN_COST)
        aged = known_age & dated & (age > soft_max) & (c_soft_max >= MIN_COST)
        soft_cost = np.maximum(
            np.where(soft_young, c_soft_min, 0.0), np.where(aged, c_soft_max, 0.0)
        )
        hard = hard_cost > 0
        # the other soft violations below cost SOFT each
        soft = np.zeros(n, dtype=bool)
        sexed = np.array(
            [w is not None and isinstance(x, str) and x != "" and x != w
             for w, x in zip(want_sex, sex, strict=True)]
        )  # fmt: skip
        hard |= sexed
        soft |= head_role & np.array([h is False for h in head])
        held = pairs["held"].to_numpy(dtype=object) if "held" in pairs else [None] * n
        own = [f"{a}|{b}" for a, b in keys]
        need = [f"{p.holds[0]}|{p.holds[1]}" if p is not None and p.holds else None for p in profs]
        once = np.array([p is not None and p.once for p in profs])
        is_staff = np.array([p is not None and p.staff for p in profs])
        no_roster = is_staff & np.array(
            [h is not None and not (set(STAFF_ROLES) & set(list(h))) for h in held]
        )
        hard |= no_roster
        hard_cost = np.where(sexed | no_roster, HARD, hard_cost)
        # not held on a row with a valid ID: unusual, unless a row of that role without a
        # usable ID may be the candidate's (its ID was lost, not its holding)
        open_hold = (
            pairs["open_hold"].fillna(False).to_numpy(dtype=bool)
            if "open_hold" in pairs
            else np.zeros(n, dtype=bool)
        )
        soft |= ~open_hold & np.array(
            [
                r is not None and h is not None and r not in list(h)
                for r, h in zip(need, held, strict=True)
            ]
        )
        if "place" in pairs and "home" in pairs:
            pl = pairs["place"].to_numpy(dtype=object)
            hm = pairs["home"].to_numpy(dtype=object)
            soft |= np.array(
                [
                    isinstance(a, str) and isinstance(b, str) and a != b
                    for a, b in zip(pl, hm, strict=True)
                ]
            )
        soft |= once & np.array(
            [h is not None and o in list(h) for o, h in zip(own, held, strict=True)]
        )
        known_d = ~np.isnan(ddays)
        fit = death_event & known_d & (ddays >= -DEATH_AFTER_DAYS) & (ddays <= DEATH_BEFORE_DAYS)
        soft |= death_event & known_d & ~fit  # recorded dead at another time
        # a record from well after the candidate's recorded death is not the candidate's
        soft |= ~death_event & dated_role & known_d & (ddays > DEAD_BEFORE_DAYS)
        soft_cost = np.maximum(soft_cost, np.where(soft, SOFT, 0.0))
        soft |= soft_cost > 0
    hard &= has
    soft &= has
    return pd.DataFrame(
        {
            "hard": hard,
            "soft": soft,
            "fit": fit & has,
            "hard_cost": np.where(hard, hard_cost, 0.0),
            "soft_cost": np.where(soft, soft_cost, 0.0),
        }
    )


def edge_penalty(
    con: duckdb.DuckDBPyConnection, nid: np.ndarray, mentions: str = "_fz"
) -> Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None:
    """A function (probe positions, candidate positions, pair weights) -> log2 penalty per
    candidate edge, for :class:`crossmatch.identity.linker.Linker` (``edge_penalty``).

    ``nid``: node id per position (``G:<gkey>`` a probe group, ``I:<id>`` an ID node). Only ID
    nodes have known facts; any other candidate (a registry row without a valid ID, a person
    kept from an earlier night) is never weighed down, nor counts as a fitting rival."""
    prof = build_mention_profiles(con, mentions)
    if prof.empty:
        return None
    asof = pd.to_datetime(prof["rec_date"], errors="coerce").max()
    asof = None if pd.isna(asof) else asof
    nid_s = pd.Series(nid, dtype=object).astype(str)
    is_id = nid_s.str.startswith("I:").to_numpy()
    facts = candidate_facts(con, nid_s[is_id].str.slice(2).tolist()).set_index("id")
    with_prof = set(prof["gkey"])
    # a mention's profile rows by position, found once: the linker calls ``penalty`` a slice
    # of probes at a time, and a merge would hash every profile row on each call
    g_code, g_uniq = pd.factorize(prof["gkey"])
    g_index = pd.Index(g_uniq)
    p_order = np.argsort(g_code, kind="stable")
    p_count = np.bincount(g_code, minlength=len(g_uniq))
    p_start = np.cumsum(p_count) - p_count
    prof_rest = prof.drop(columns="gkey")

    def _part(
        out: np.ndarray,
        probe: np.ndarray,
        idx: np.ndarray,
        gk: np.ndarray,
        cid: np.ndarray,
        code: np.ndarray,
    ) -> None:
        cnt = p_count[code]
        at_e = np.repeat(np.arange(len(idx)), cnt)
        block = np.cumsum(cnt) - cnt  # where each edge's rows start in ``pairs``
        at_p = p_order[np.repeat(p_start[code] - block, cnt) + np.arange(len(at_e))]
        pairs = pd.concat(
            [
                pd.DataFrame({"e": idx[at_e], "gkey": gk[at_e], "cid": cid[at_e]}),
                prof_rest.iloc[at_p].reset_index(drop=True),
            ],
            axis=1,
        ).join(facts, on="cid")
        v = violations(pairs, asof, costs)
        pairs = pd.concat([pairs, v], axis=1)
        # a candidate is as implausible as its worst mention of the node
        pairs["home_hit"] = _at_home(pairs)
        per = pairs.groupby("e").agg(
            hard=("hard", "any"),
            soft=("soft", "any"),
            fit=("fit", "any"),
            home=("home_hit", "any"),
            hard_cost=("hard_cost", "max"),
            soft_cost=("soft_cost", "max"),
        )
        per["probe"] = probe[per.index.to_numpy()]
        per["clean"] = ~per["hard"] & ~per["soft"]
        # a rival fits: another candidate of the probe with no violation (and, where a death
        # event is the record, one whose death the records date close to it)
        has_fit = per.groupby("probe")["fit"].transform("any")
        late = has_fit & ~per["fit"]
        per.loc[late, "soft"] = True
        per.loc[late, "soft_cost"] = np.maximum(per.loc[late, "soft_cost"], SOFT)
        per["clean"] = ~per["hard"] & ~per["soft"]
        rival = per.groupby("probe")["clean"].transform("sum") - per["clean"].astype(int)
        pen = np.where(per["hard"], per["hard_cost"], 0.0) + np.where(
            per["soft"] & ~per["hard"] & (rival > 0), per["soft_cost"], 0.0
        )
        # support (a negative penalty): evidence that points *to* this candidate, as much as
        # it is rarer by chance than for the person (its likelihood ratio, measured on the
        # county's own records); a candidate weighed down for the role gets none
        sup = np.where(per["fit"], death_bits, 0.0) + np.where(per["home"], home_bits, 0.0)
        sup = np.where(per["hard"] | per["soft"], 0.0, sup)
        out[per.index.to_numpy()] = pen - sup

    def penalty(probe: np.ndarray, other: np.ndarray, w: np.ndarray) -> np.ndarray:
        out = np.zeros(len(probe))
        if len(probe) == 0:
            return out
        pk = nid_s.to_numpy()[probe]
        ok = np.array([k.startswith("G:") and k[2:] in with_prof for k in pk]) & is_id[other]
        idx = np.flatnonzero(ok)
        if len(idx) == 0:
            return out
        gk = np.array([k[2:] for k in pk[idx]], dtype=object)
        cid = np.array([k[2:] for k in nid_s.to_numpy()[other[idx]]], dtype=object)
        # every profile row of the edge's mention (the inner merge on gkey, by position)
        code_all = g_index.get_indexer(gk)
        cnt_all = p_count[code_all]
        # a slice of whole probes at a time, at most PAIR_CHUNK (mention profile row x
        # candidate) rows each (a probe with more is a slice of its own): a payee group's
        # profile rows times its candidates can be millions
        by_probe = np.argsort(probe[idx], kind="stable")
        sp = probe[idx][by_probe]
        run = np.cumsum(cnt_all[by_probe])
        lo = 0
        while lo < len(by_probe):
            hi = int(np.searchsorted(run, (run[lo - 1] if lo else 0) + PAIR_CHUNK, "right"))
            hi = max(hi, lo + 1)
            if hi < len(by_probe):  # the last probe whole
                hi = int(np.searchsorted(sp, sp[hi - 1], side="right"))
            at = by_probe[lo:hi]
            _part(out, probe, idx[at], gk[at], cid[at], code_all[at])
            lo = hi
        return out

    costs = measured_limits(con, set(zip(prof["source"], prof["role"], strict=True)))
    for (src, role, limit), c in sorted(costs.items()):
        log.info("role profile: %s/%s %s broken by the county's own rows: %.1f log2", src, role,
                 limit, c)  # fmt: skip
    death_bits = death_support(con)
    home_bits = home_support(con)
    log.info("role profile support: death fit %.1f, home township %.1f log2", death_bits, home_bits)
    return penalty


def measured_limits(
    con: duckdb.DuckDBPyConnection, roles: set[tuple[str, str]] | None = None
) -> dict[tuple[str, str, str], float]:
    """(source, role, limit) -> log2 units, for the age limits of :data:`PROFILES` that the
    county's own records break; ``limit`` is ``hard_min``, ``soft_min`` or ``soft_max``.

    Why: a limit is an assumption about what a record's date means, and a department's date
    may not mean it. A vehicle's 初次登记日期 is the vehicle's first registration (a used car's
    owner may have been a child then, or not born); a company's 成立日期 predates a later legal
    representative; a case's start predates a member born into it. Weighed as impossible
    (:data:`HARD`), such a limit passes over the true owner: a unique name left unresolved, or
    a namesake who was an adult then linked instead.

    Measured like any other Fellegi-Sunter weight, on the role's rows that carry a valid ID:
    m = the share of them that break the limit at their own record date (k of n, as
    (k + 1/2) / (n + 1)), u = the share of registered persons who would break it at those
    dates; the cost is log2(u / m), at most the configured HARD / SOFT. Only a limit broken by
    at least :data:`MIN_BREAKS` rows and :data:`BREAK_SHARE` of them is overruled (a couple of
    rows may carry a mistyped ID), and only with :data:`MEASURE_MIN_ROWS` dated rows; every
    other limit keeps its configured cost. Benefit-specific minimum ages (payments) are not
    measured. ``roles``: only these (source, role) (default: every profile)."""
    tables = _tables(con)
    births: np.ndarray | None = None  # read once, when a limit is broken
    out: dict[tuple[str, str, str], float] = {}
    for (source, role), prof in PROFILES.items():
        table = f"src_{source}"
        if table not in tables or not prof.date:
            continue
        if roles is not None and (source, role) not in roles:
            continue
        given = {"hard_min": prof.hard_min_age}
        if prof.item is None:
            given |= {"soft_min": prof.soft_min_age, "soft_max": prof.soft_max_age}
        limits: dict[str, float] = {k: float(v) for k, v in given.items() if v is not None}
        cols = _columns(con, table)
        date_col = next((c for c in prof.date if c in cols), None)
        if not limits or date_col is None:
            continue
        rows = f"""SELECT * FROM (SELECT
                date_diff('day', DATE '1970-01-01', {_date_sql(f"s.{date_col}")}) AS rec,
                date_diff('day', DATE '1970-01-01',
                    try_strptime(substr(m.id, 7, 8), '%Y%m%d')::DATE) AS birth
            FROM person_mention m JOIN {table} s ON s._file = m.file AND s._row = m.row
            WHERE m.source = '{source}' AND m.role = '{role}' AND m.id IS NOT NULL)
            WHERE rec IS NOT NULL AND birth IS NOT NULL"""
        # counted in DuckDB: a big county's payments are tens of millions of rows
        breaks = ", ".join(
            f"count_if((rec - birth) / 365.25 {'>' if lim == 'soft_max' else '<'} {years})"
            for lim, years in limits.items()
        )
        n, *ks = con.execute(f"SELECT count(*), {breaks} FROM ({rows})").fetchall()[0]
        if n < MEASURE_MIN_ROWS:
            continue
        sample = None
        for (limit, years), k in zip(limits.items(), ks, strict=True):
            if k < MIN_BREAKS or k < BREAK_SHARE * n:
                continue
            if births is None:
                births = _registry_birth_days(con)
            if len(births) == 0:
                return out
            if sample is None:
                sample = (
                    con.execute(
                        f"SELECT rec::DOUBLE AS rec FROM ({rows}) "
                        f"USING SAMPLE reservoir({_U_DATES} ROWS) REPEATABLE (1)"
                    )
                    .df()["rec"]
                    .to_numpy(dtype=float)
                )
            edge = sample - years * 365.25  # born after this: younger than ``years`` then
            if limit == "soft_max":
                u = float(np.searchsorted(births, edge, "left").mean()) / len(births)
            else:
                u = 1.0 - float(np.searchsorted(births, edge, "right").mean()) / len(births)
            configured = HARD if limit == "hard_min" else SOFT
            m = (k + 0.5) / (n + 1)
            out[(source, role, limit)] = float(np.clip(np.log2(max(u, 1e-12) / m), 0.0, configured))
    return out


def _registry_birth_days(con: duckdb.DuckDBPyConnection) -> np.ndarray:
    """Sorted birth days (since 1970-01-01) of the registered persons (``_id_node``), else of
    every valid ID mentioned."""
    if _has_temp(con, "_id_node"):
        sql = "SELECT id FROM _id_node WHERE in_registry"
    else:
        sql = "SELECT DISTINCT id FROM person_mention WHERE id IS NOT NULL"
    b = con.execute(
        f"""SELECT date_diff('day', DATE '1970-01-01',
                try_strptime(substr(id, 7, 8), '%Y%m%d')::DATE)::DOUBLE AS b FROM ({sql})"""
    ).df()["b"]
    return np.sort(b.dropna().to_numpy(dtype=float))


def _at_home(pairs: pd.DataFrame) -> np.ndarray:
    """Per row: the record's place names a township and it is the candidate's home township."""
    if "place" not in pairs or "home" not in pairs:
        return np.zeros(len(pairs), dtype=bool)
    pl = pairs["place"].to_numpy(dtype=object)
    hm = pairs["home"].to_numpy(dtype=object)
    return np.array(
        [isinstance(a, str) and isinstance(b, str) and a == b for a, b in zip(pl, hm, strict=True)],
        dtype=bool,
    )


def death_support(con: duckdb.DuckDBPyConnection) -> float:
    """log2 likelihood ratio of "the candidate's recorded death falls in the window before a
    death / cremation record" (:data:`DEATH_BEFORE_DAYS` before to :data:`DEATH_AFTER_DAYS`
    after): about 1 for the person, and for anyone else the chance that a registered person
    died in a window that long, from the county's recorded deaths (share of the registry
    recorded dead, spread over the span of their death dates, at least a year)."""
    if not (_has_temp(con, "_id_death") and _has_temp(con, "_id_node")):
        return 0.0
    dead, lo, hi = con.execute("SELECT count(*), min(death), max(death) FROM _id_death").fetchall()[
        0
    ]
    n = con.execute("SELECT count(*) FROM _id_node WHERE in_registry").fetchall()[0][0]
    if not dead or not n or lo is None:
        return 0.0
    span = max((pd.Timestamp(hi) - pd.Timestamp(lo)).days, 365)
    window = DEATH_BEFORE_DAYS + DEATH_AFTER_DAYS + 1
    q = min(dead, n) / n * min(window / span, 1.0)
    return float(np.clip(-np.log2(max(q, 1e-12)), 0.0, MAX_SUPPORT))


def home_support(con: duckdb.DuckDBPyConnection, min_rows: int = 30) -> float:
    """log2 likelihood ratio of "the record's place (a property's location) names the
    candidate's home township", measured on the records of the same roles that carry a valid
    ID: how often their place is their own home township (a) against how often it would be
    by chance, given how places and homes spread over the townships (b). 0 when fewer than
    ``min_rows`` such records name both, or when places do not follow homes (a <= b)."""
    roles = [(src, role) for (src, role), p in PROFILES.items() if p.place]
    if not roles:
        return 0.0
    key = _home_support_key(con, roles, min_rows)
    if key is not None:
        hit = con.execute(
            "SELECT value FROM identity_support_cache WHERE key = ?", [key]
        ).fetchall()
        if hit:
            return float(hit[0][0])
    value = _home_support(con, roles, min_rows)
    if key is not None:
        con.execute("DELETE FROM identity_support_cache WHERE kind = 'home'")
        con.execute("INSERT INTO identity_support_cache VALUES ('home', ?, ?)", [key, value])
    return value


#: Bumped whenever :func:`home_support` computes differently from the same records.
HOME_SUPPORT_VERSION = "1"


def _home_support_key(
    con: duckdb.DuckDBPyConnection, roles: list[tuple[str, str]], min_rows: int
) -> str | None:
    """What :func:`home_support` is computed from: the file versions (``_mv_now``, made by
    :func:`~crossmatch.identity.mentions.build_mentions`) of the place roles' sources and of
    the registry (home addresses), the township names, the profiles and this code's version.
    None (no cache) when the versions are not known."""
    if not _has_temp(con, "_mv_now"):
        return None
    con.execute(
        """CREATE TABLE IF NOT EXISTS identity_support_cache
        (kind VARCHAR, key VARCHAR, value DOUBLE)"""
    )
    tables = sorted({f"src_{src}" for src, _ in roles} | {"src_hukou"})
    versions = con.execute(
        "SELECT tbl, file, file_hash, n FROM _mv_now WHERE list_contains(?, tbl) ORDER BY ALL",
        [tables],
    ).fetchall()
    profiles = sorted(repr((k, PROFILES[k])) for k in roles)
    text = repr(
        (HOME_SUPPORT_VERSION, versions, staff.township_names(con), profiles, min_rows,
         DEATH_BEFORE_DAYS, MAX_SUPPORT)
    )  # fmt: skip
    return "home:" + hashlib.sha1(text.encode("utf-8")).hexdigest()


def _home_support(
    con: duckdb.DuckDBPyConnection, roles: list[tuple[str, str]], min_rows: int
) -> float:
    """:func:`home_support` computed."""
    cond = " OR ".join(f"(source = '{a}' AND role = '{b}')" for a, b in roles)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _rp_idm AS SELECT id AS gkey, source, file, row, role "
        f"FROM person_mention WHERE id IS NOT NULL AND ({cond})"
    )
    prof = build_mention_profiles(con, "_rp_idm")
    prof = prof[prof["place"].notna()]
    if len(prof) < min_rows:
        return 0.0
    facts = candidate_facts(con, prof["gkey"].drop_duplicates().tolist())
    both = prof.merge(facts[["id", "home"]], left_on="gkey", right_on="id")
    both = both[both["home"].notna()]
    if len(both) < min_rows:
        return 0.0
    agree = int((both["place"] == both["home"]).sum())
    a = (agree + 1) / (len(both) + 2)
    pp = both["place"].value_counts(normalize=True)
    ph = both["home"].value_counts(normalize=True)
    b = float((pp * ph.reindex(pp.index).fillna(0.0)).sum())
    if b <= 0 or a <= b:
        return 0.0
    return float(np.clip(np.log2(a / b), 0.0, MAX_SUPPORT))
