"""Features per entity, as SQL on the warehouse: one declaration per feature.

Five kinds of entity are scored, each keyed by what the review layer's clues use as subject:

``recipient``  a payee (``r_payment.payee_pid``): the person's ID number
``household``  an assistance case (``r_assistance``), keyed by its applicant's ID number
``village``    a 12-digit village code
``handler``    a case handler or approver (经办人 / 审批人), by ID number
``official``   a village cadre (``r_cadre``), by ID number

Each entity kind has a *base* query (CTEs over ``r_payment``, ``r_assistance``, ``person``,
``kin_relative``, ``r_cadre``, ``hit``) producing per-entity aggregates, and each
:class:`Feature` is one SQL expression over that base with its documentation, its Chinese label
and the sentence an analyst reads when the feature pushes an entity up (:mod:`crossmatch.ml
.explain`). Every feature is oriented so that *higher is more suspicious*. A missing input
table does not fail the run: a required one makes the entity kind ``skipped``, an optional one
(kinship, cadres, hits) is replaced by an empty table and the kind is ``blind`` with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import polars as pl

from crossmatch.review.api import _pl

#: months whose last days are the approval deadlines (half-year and year end)
DEADLINE_MONTHS = (6, 12)
#: days before a deadline counted as "just before" it
DEADLINE_DAYS = 8
#: pseudo-cases pulling a handler's shares towards the expected one (few cases, no pattern)
SHRINK = 5


@dataclass(frozen=True)
class Feature:
    """One feature: an SQL expression over its entity's base query, documented."""

    name: str
    entity: str
    sql: str
    doc: str
    label: str  # short Chinese label
    reason: str  # sentence template: {value}, {peer} (the peers' median), {ratio}
    #: ``detect``: fed to the unsupervised detectors; ``context``: what the rules already say
    #: (hits, kinship the favouritism rules test) or no suspicion by itself (tenure), given
    #: to the supervised ranker instead so the unsupervised one surfaces what rules do not name
    role: str = "detect"

    def render(self, value: float, peer: float) -> str:
        ratio = value / peer if peer else float("inf")
        text = self.reason.format(value=value, peer=peer, ratio=ratio)
        return text.replace("inf 倍", "远高于同类")


# ---------------------------------------------------------------------------- base queries
# Every base query starts from these shared CTEs; ``{run}`` is the detect run of the hits.
_COMMON = """
pay AS (
    SELECT payee_pid AS pid, item, CAST(amount AS DOUBLE) AS amount, period, account,
           village_code
    FROM r_payment
    WHERE status = 'success' AND payee_pid IS NOT NULL AND amount IS NOT NULL
),
hits AS (SELECT subject, count(*) AS n FROM hit WHERE run_id = {run} GROUP BY subject),
close_kin AS (SELECT person_pid, relative_pid FROM kin_relative WHERE is_close),
cadres AS (SELECT DISTINCT cadre_pid AS pid, village_code FROM r_cadre WHERE cadre_pid IS NOT NULL)
"""

BASE: dict[str, str] = {
    "recipient": """
person_item AS (
    SELECT pid, item, avg(amount) AS avg_amount, count(DISTINCT period) AS months,
           count(DISTINCT amount) AS levels,
           coalesce(stddev_pop(amount) / nullif(avg(amount), 0), 0) AS cv,
           avg(CASE WHEN amount <> round(amount) THEN 1.0 ELSE 0.0 END) AS odd,
           count(*) AS n, sum(amount) AS total, min(left(village_code, 9)) AS township
    FROM pay GROUP BY pid, item
),
peer AS (
    SELECT item, township, median(avg_amount) AS med FROM person_item GROUP BY item, township
),
acct AS (SELECT account, count(DISTINCT pid) AS payees FROM pay GROUP BY account),
enrol AS (
    SELECT member_pid AS pid, min(start_date) AS since FROM r_assistance
    WHERE member_pid IS NOT NULL GROUP BY member_pid
),
horizon AS (SELECT max(period) AS last_period FROM pay),
base AS (
    SELECT i.pid AS entity_id, min(p.village_code) AS village_code,
           count(DISTINCT i.item) AS items, sum(i.total) AS total,
           max(i.avg_amount / nullif(pe.med, 0)) AS peer_ratio,
           max(CASE WHEN i.months >= 3 THEN i.levels ELSE 1 END) AS levels,
           max(CASE WHEN i.months >= 3 THEN i.cv ELSE 0 END) AS cv,
           coalesce(sum(CASE WHEN i.months >= 3 THEN i.odd * i.n END)
                    / nullif(sum(CASE WHEN i.months >= 3 THEN i.n END), 0), 0) AS odd
    FROM person_item i JOIN peer pe USING (item, township)
    LEFT JOIN person p ON p.person_id = i.pid
    GROUP BY i.pid
),
pay_person AS (
    SELECT y.pid, count(DISTINCT y.account) AS accounts, max(a.payees) AS sharers,
           avg(CASE WHEN y.village_code IS DISTINCT FROM p.village_code AND p.village_code
                    IS NOT NULL THEN 1.0 ELSE 0.0 END) AS elsewhere
    FROM pay y JOIN acct a USING (account) LEFT JOIN person p ON p.person_id = y.pid
    GROUP BY y.pid
)
SELECT b.*, pp.accounts, pp.sharers, pp.elsewhere,
       coalesce(date_diff('month', e.since,
                          CAST(strptime((SELECT last_period FROM horizon) || '-01', '%Y-%m-%d')
                               AS DATE)), 0) AS tenure,
       coalesce(h.n, 0) AS hits
FROM base b JOIN pay_person pp ON pp.pid = b.entity_id
LEFT JOIN enrol e ON e.pid = b.entity_id LEFT JOIN hits h ON h.subject = b.entity_id
""",
    "household": """
cases AS (
    SELECT applicant_pid AS entity_id, min(village_code) AS village_code,
           min(start_date) AS since, list(DISTINCT member_pid) AS members
    FROM r_assistance WHERE applicant_pid IS NOT NULL GROUP BY applicant_pid
),
mem AS (SELECT entity_id, unnest(members) AS pid FROM cases),
mem_all AS (
    SELECT entity_id, pid FROM mem WHERE pid IS NOT NULL
    UNION SELECT entity_id, entity_id FROM cases
),
mpay AS (SELECT m.entity_id, y.pid, y.item, y.amount FROM mem_all m JOIN pay y USING (pid)),
age AS (
    SELECT person_id AS pid, CAST(floor(date_diff('year', birth_date, DATE '2025-12-31') / 10)
                                  AS INTEGER) AS band
    FROM person WHERE birth_date IS NOT NULL
),
band_n AS (SELECT band, count(*) AS n FROM age GROUP BY band),
rarity AS (
    -- how rare an enrolment is for someone of that age (10-year bands, whole county)
    SELECT b.band, i.item, -ln((i.k + 1.0) / (b.n + 2.0)) AS r
    FROM band_n b JOIN (SELECT a.band, y.item, count(DISTINCT y.pid) AS k FROM pay y
                        JOIN age a USING (pid) GROUP BY ALL) i USING (band)
),
rare AS (
    SELECT e.entity_id, sum(r.r) AS rare
    FROM (SELECT DISTINCT entity_id, pid, item FROM mpay) e JOIN age a USING (pid)
    JOIN rarity r ON r.band = a.band AND r.item = e.item
    GROUP BY e.entity_id
),
horizon AS (SELECT max(period) AS last_period FROM pay),
kin_cadre AS (
    SELECT DISTINCT m.entity_id, m.pid FROM mem_all m
    JOIN close_kin k ON k.person_pid = m.pid JOIN cadres c ON c.pid = k.relative_pid
)
SELECT c.entity_id, c.village_code,
       (SELECT count(*) FROM mem_all x WHERE x.entity_id = c.entity_id) AS members,
       coalesce(p.programmes, 0) AS programmes, coalesce(p.enrolments, 0) AS enrolments,
       coalesce(p.total, 0) AS total, coalesce((SELECT rare FROM rare x
                                                WHERE x.entity_id = c.entity_id), 0) AS rare,
       coalesce((SELECT count(*) FROM kin_cadre k WHERE k.entity_id = c.entity_id), 0) AS cadre_kin,
       coalesce(date_diff('month', c.since,
                          CAST(strptime((SELECT last_period FROM horizon) || '-01', '%Y-%m-%d')
                               AS DATE)), 0) AS tenure,
       coalesce((SELECT sum(h.n) FROM mem_all x JOIN hits h ON h.subject = x.pid
                 WHERE x.entity_id = c.entity_id), 0) AS hits
FROM cases c
LEFT JOIN (SELECT entity_id, count(DISTINCT item) AS programmes,
                  count(DISTINCT (pid, item)) AS enrolments, sum(amount) AS total
           FROM mpay GROUP BY entity_id) p USING (entity_id)
""",
    "village": """
residents AS (
    SELECT village_code, count(*) AS persons, count(DISTINCT household_no) AS households
    FROM person WHERE village_code IS NOT NULL AND in_registry GROUP BY village_code
),
vitem AS (
    SELECT y.village_code, y.item, sum(y.amount) AS total, count(DISTINCT y.pid) AS payees
    FROM pay y GROUP BY y.village_code, y.item
),
age AS (
    SELECT person_id AS pid, village_code,
           CAST(floor(date_diff('year', birth_date, DATE '2025-12-31') / 10) AS INTEGER) AS band
    FROM person WHERE birth_date IS NOT NULL AND village_code IS NOT NULL AND in_registry
),
band_rate AS (
    -- the county's share of each 10-year age band drawing each item
    SELECT b.band, i.item, i.k / b.n AS rate
    FROM (SELECT band, count(*) AS n FROM age GROUP BY band) b
    JOIN (SELECT a.band, y.item, count(DISTINCT y.pid) AS k FROM pay y JOIN age a USING (pid)
          GROUP BY ALL) i USING (band)
),
per_payee AS (SELECT item, sum(amount) / count(DISTINCT pid) AS amount FROM pay GROUP BY item),
expected AS (
    SELECT v.village_code, r.item, sum(v.n * r.rate) * any_value(pp.amount) AS amount
    FROM (SELECT village_code, band, count(*) AS n FROM age GROUP BY ALL) v
    JOIN band_rate r USING (band) JOIN per_payee pp USING (item)
    GROUP BY ALL
),
pc_ratio AS (
    -- what the village was paid per item against what its residents' ages would draw at the
    -- county's rates (+100 yuan each, so small items do not swing)
    SELECT e.village_code, e.item,
           (coalesce(v.total, 0) + 100) / (e.amount + 100) AS ratio
    FROM expected e LEFT JOIN vitem v USING (village_code, item)
),
vtot AS (
    SELECT r.village_code, coalesce(sum(v.total), 0) / any_value(r.persons) AS per_capita
    FROM residents r LEFT JOIN vitem v USING (village_code) GROUP BY r.village_code
),
paid AS (SELECT village_code, count(DISTINCT pid) AS payees FROM pay GROUP BY village_code),
vcases AS (
    SELECT village_code, count(DISTINCT applicant_pid) AS cases FROM r_assistance
    GROUP BY village_code
),
kin_cases AS (
    SELECT a.village_code, count(DISTINCT a.applicant_pid) AS n
    FROM r_assistance a JOIN close_kin k ON k.person_pid = a.member_pid
    JOIN cadres c ON c.pid = k.relative_pid AND c.village_code = a.village_code
    GROUP BY a.village_code
),
vhits AS (SELECT village_code, count(*) AS n FROM hit WHERE run_id = {run} GROUP BY village_code)
SELECT r.village_code AS entity_id, r.village_code, r.persons,
       (SELECT max(ratio) FROM pc_ratio x WHERE x.village_code = r.village_code) AS item_ratio,
       (SELECT arg_max(item, (ratio, item)) FROM pc_ratio x WHERE x.village_code = r.village_code)
           AS item_ratio_item,
       (t.per_capita + 1) / (avg(t.per_capita) OVER (PARTITION BY left(r.village_code, 9)) + 1)
           AS total_ratio,
       coalesce(p.payees, 0) / r.persons AS paid_share,
       coalesce(c.cases, 0) / r.households AS case_share,
       coalesce(k.n, 0) / greatest(coalesce(c.cases, 0), 1) AS kin_case_share,
       1000.0 * coalesce(h.n, 0) / r.persons AS hits_per_1000
FROM residents r JOIN vtot t USING (village_code)
LEFT JOIN paid p USING (village_code) LEFT JOIN vcases c USING (village_code)
LEFT JOIN kin_cases k USING (village_code) LEFT JOIN vhits h USING (village_code)
""",
    "handler": """
roles AS (
    SELECT DISTINCT handler_pid AS pid, applicant_pid, village_code, start_date,
           left(applicant_name, 1) AS surname
    FROM r_assistance WHERE handler_pid IS NOT NULL
    UNION
    SELECT DISTINCT approver_pid, applicant_pid, village_code, start_date, left(applicant_name, 1)
    FROM r_assistance WHERE approver_pid IS NOT NULL
),
town_surname AS (
    SELECT township, surname, n / sum(n) OVER (PARTITION BY township) AS town_share
    FROM (SELECT left(village_code, 9) AS township, surname, count(*) AS n
          FROM (SELECT DISTINCT applicant_pid, village_code, surname FROM roles) GROUP BY 1, 2)
),
mine AS (
    SELECT pid, surname, township, n, n / sum(n) OVER (PARTITION BY pid) AS share
    FROM (SELECT pid, surname, left(min(village_code), 9) AS township, count(*) AS n
          FROM roles GROUP BY pid, surname)
),
lift AS (
    SELECT m.pid, max(CASE WHEN m.n >= 3 THEN m.share / t.town_share END) AS lift,
           arg_max(m.surname, (m.n, m.surname)) AS top_surname
    FROM mine m JOIN town_surname t USING (township, surname) GROUP BY m.pid
),
kin AS (
    SELECT r.pid, count(DISTINCT r.applicant_pid) AS n FROM roles r
    JOIN r_assistance a ON a.applicant_pid = r.applicant_pid
    JOIN close_kin k ON k.person_pid = r.pid AND k.relative_pid = a.member_pid
    GROUP BY r.pid
)
SELECT r.pid AS entity_id, min(p.village_code) AS village_code,
       count(DISTINCT r.applicant_pid) AS cases,
       -- shrunk towards the share a uniform calendar gives, so one case is no pattern
       (sum(CASE WHEN month(r.start_date) IN {deadline_months}
                  AND day(last_day(r.start_date)) - day(r.start_date) < {deadline_days}
                 THEN 1.0 ELSE 0.0 END) + {shrink} * {uniform})
           / (count(*) + {shrink}) AS deadline_share,
       coalesce(any_value(l.lift), 1.0) AS surname_lift, any_value(l.top_surname) AS top_surname,
       coalesce(any_value(k.n), 0) / (count(DISTINCT r.applicant_pid) + {shrink}) AS kin_share,
       avg(CASE WHEN r.village_code = p.village_code THEN 1.0 ELSE 0.0 END) AS own_village_share
FROM roles r LEFT JOIN person p ON p.person_id = r.pid
LEFT JOIN lift l ON l.pid = r.pid LEFT JOIN kin k ON k.pid = r.pid
GROUP BY r.pid
""",
    "official": """
kin_pay AS (
    SELECT c.pid, count(DISTINCT y.pid) AS payees, sum(y.amount) AS total
    FROM cadres c JOIN close_kin k ON k.person_pid = c.pid JOIN pay y ON y.pid = k.relative_pid
    GROUP BY c.pid
),
kin_case AS (
    SELECT c.pid, count(DISTINCT a.applicant_pid) AS cases
    FROM cadres c JOIN close_kin k ON k.person_pid = c.pid
    JOIN r_assistance a ON a.member_pid = k.relative_pid
    GROUP BY c.pid
),
kin_hits AS (
    SELECT c.pid, sum(h.n) AS n FROM cadres c JOIN close_kin k ON k.person_pid = c.pid
    JOIN hits h ON h.subject = k.relative_pid GROUP BY c.pid
)
SELECT c.pid AS entity_id, min(c.village_code) AS village_code,
       coalesce(any_value(p.payees), 0) AS kin_payees, coalesce(any_value(p.total), 0) AS kin_paid,
       coalesce(any_value(a.cases), 0) AS kin_cases, coalesce(any_value(h.n), 0) AS kin_hits
FROM cadres c LEFT JOIN kin_pay p USING (pid) LEFT JOIN kin_case a USING (pid)
LEFT JOIN kin_hits h USING (pid)
GROUP BY c.pid
""",
}

#: tables each entity kind cannot do without (missing: the kind is skipped)
REQUIRED: dict[str, tuple[str, ...]] = {
    "recipient": ("r_payment", "person"),
    "household": ("r_assistance", "r_payment"),
    "village": ("person", "r_payment", "r_assistance"),
    "handler": ("r_assistance", "person"),
    "official": ("r_cadre", "kin_relative", "r_payment", "r_assistance"),
}
#: optional inputs and an empty stand-in when missing (the kind is then blind)
OPTIONAL: dict[str, str] = {
    "hit": "SELECT NULL::VARCHAR AS run_id, NULL::VARCHAR AS subject, "
    "NULL::VARCHAR AS village_code WHERE FALSE",
    "kin_relative": "SELECT NULL::VARCHAR AS person_pid, NULL::VARCHAR AS relative_pid, "
    "NULL::BOOLEAN AS is_close WHERE FALSE",
    "r_cadre": "SELECT NULL::VARCHAR AS cadre_pid, NULL::VARCHAR AS village_code WHERE FALSE",
}

_F = Feature
FEATURES: tuple[Feature, ...] = (
    # ---- recipient
    _F("items", "recipient", "items", "Distinct subsidy items the person was paid.",
       "领取项目数", "同时领取 {value:.0f} 个补贴项目(同类中位数 {peer:.0f})"),
    _F("total", "recipient", "total", "Total paid in the data's period (yuan).",
       "发放总额", "发放总额 {value:,.0f} 元，为同类中位数的 {ratio:.1f} 倍"),
    _F("peer_ratio", "recipient", "coalesce(peer_ratio, 1)",
       "Largest ratio, over the person's items, of their mean payment to the median mean payment "
       "of the item's recipients in the same township (peer group: item and township).",
       "金额/同乡镇同项目", "月均发放额为同乡镇同项目中位数的 {value:.1f} 倍"),
    _F("amount_levels", "recipient", "levels",
       "Most distinct amounts paid for one monthly item (items paid in >= 3 months): a steady "
       "standard gives 1 or 2 (a mid-year change).",
       "金额档数", "同一项目出现 {value:.0f} 种不同发放额(同类中位数 {peer:.0f})"),
    _F("amount_cv", "recipient", "cv",
       "Largest coefficient of variation of the monthly amounts of one monthly item.",
       "金额波动", "月发放额波动系数 {value:.2f}(同类中位数 {peer:.2f})"),
    _F("odd_amounts", "recipient", "odd",
       "Share of the monthly items' payments whose amount is not whole yuan.",
       "非整数金额占比", "{value:.0%} 的按月发放额不是整数元"),
    _F("accounts", "recipient", "accounts", "Distinct accounts the person was paid into.",
       "收款账户数", "使用 {value:.0f} 个收款账户"),
    _F("account_sharers", "recipient", "sharers",
       "Most distinct payees paid into one of the person's accounts.",
       "账户共用人数", "收款账户由 {value:.0f} 名领取人共用"),
    _F("paid_elsewhere", "recipient", "elsewhere",
       "Share of payments made through a village other than the person's registry village.",
       "异地发放占比", "{value:.0%} 的发放不在户籍所在村"),
    _F("tenure", "recipient", "tenure",
       "Months from the person's first assistance case start to the last paid month (0 when "
       "never in a case).", "救助月数", "享受救助已 {value:.0f} 个月", role="context"),
    _F("rule_hits", "recipient", "hits", "Rule hits with this person as subject in the run.",
       "规则命中数", "被 {value:.0f} 条规则命中", role="context"),
    # ---- household
    _F("programmes", "household", "programmes",
       "Distinct items paid to any member of the case (applicant included).",
       "户享受项目数", "全户同时享受 {value:.0f} 个补贴项目(同类户中位数 {peer:.0f})"),
    _F("enrolments", "household", "enrolments",
       "Distinct (member, item) enrolments in the case.", "户享受人次",
       "全户 {value:.0f} 人次享受补贴(同类户中位数 {peer:.0f})"),
    _F("rare_enrolments", "household", "rare",
       "Sum over the members' enrolments of -ln(share of the county's residents of the "
       "member's 10-year age band drawing that item): two working-age members on disability "
       "allowance weigh more than an 80-year-old's elderly allowance.", "罕见享受程度",
       "全户享受组合罕见(罕见度 {value:.1f}，同类户中位数 {peer:.1f})"),
    _F("paid_per_member", "household", "total / greatest(members, 1)",
       "Total paid to the case's members per member (yuan).", "户人均发放额",
       "户人均发放额 {value:,.0f} 元，为同类户中位数的 {ratio:.1f} 倍"),
    _F("cadre_kin", "household", "cadre_kin",
       "Members who are a close relative of a village cadre.", "干部近亲属人数",
       "{value:.0f} 名成员是村干部近亲属", role="context"),
    _F("case_tenure", "household", "tenure", "Months since the case started.", "救助月数",
       "救助已持续 {value:.0f} 个月", role="context"),
    _F("household_hits", "household", "hits", "Rule hits on any member in the run.",
       "成员规则命中数", "成员被规则命中 {value:.0f} 次", role="context"),
    # ---- village
    _F("item_per_capita_ratio", "village", "coalesce(item_ratio, 1)",
       "Largest ratio, over items, of what the village was paid for the item to what its "
       "residents would draw at the county's rate for their 10-year age band (the peer group "
       "is every resident of the same age; +100 yuan on both sides).",
       "分项发放额/按年龄预期", "本村某项目发放额为按本村人口年龄结构预期的 {value:.1f} 倍"),
    _F("per_capita_ratio", "village", "total_ratio",
       "The village's per-capita payments over the mean of its township's villages.",
       "人均发放/同乡镇", "本村人均发放额为同乡镇村均值的 {value:.1f} 倍"),
    _F("paid_share", "village", "paid_share", "Share of registry residents paid anything.",
       "领取人口占比", "{value:.0%} 的户籍人口领取补贴(同类村中位数 {peer:.0%})"),
    _F("case_share", "village", "case_share", "Assistance cases per registry household.",
       "低保户占比", "低保/特困户占全村户数 {value:.0%}(同类村中位数 {peer:.0%})"),
    _F("cadre_kin_cases", "village", "kin_case_share",
       "Share of the village's cases with a close relative of one of its cadres.",
       "干部亲属案件占比", "{value:.0%} 的救助案件涉及本村干部近亲属", role="context"),
    _F("hits_per_1000", "village", "hits_per_1000", "Rule hits per 1,000 residents.",
       "千人命中数", "每千人规则命中 {value:.1f} 次(同类村中位数 {peer:.1f})", role="context"),
    # ---- handler / approver
    _F("cases", "handler", "cases", "Cases handled or approved.", "经办案件数",
       "经办/审批 {value:.0f} 件(同类中位数 {peer:.0f})"),
    _F("deadline_share", "handler", "deadline_share",
       f"Share of the cases approved in the last {DEADLINE_DAYS} days of a deadline month "
       f"{DEADLINE_MONTHS} (half-year and year end).", "临近截止审批占比",
       "{value:.0%} 的审批集中在6月底、12月底前几天(同类中位数 {peer:.0%})"),
    _F("surname_lift", "handler", "surname_lift",
       "Largest lift, over applicant surnames (>= 3 cases), of the surname's share of the "
       "person's cases over its share of the township's cases.", "同姓集中度",
       "经办案件中某一姓氏占比为该姓在本乡镇占比的 {value:.1f} 倍"),
    _F("kin_share", "handler", "kin_share",
       "Share of the cases with a member who is the person's close relative.", "亲属案件占比",
       "{value:.0%} 的经办案件涉及本人近亲属", role="context"),
    _F("own_village_share", "handler", "own_village_share",
       "Share of the cases in the person's own registry village.", "本村案件占比",
       "{value:.0%} 的经办案件在本人户籍村(同类中位数 {peer:.0%})"),
    # ---- official (village cadre)
    _F("kin_payees", "official", "kin_payees", "Close relatives paid any subsidy.",
       "领补贴近亲属数", "{value:.0f} 名近亲属领取补贴"),
    _F("kin_paid", "official", "kin_paid", "Total paid to close relatives (yuan).",
       "近亲属领取总额", "近亲属共领取 {value:,.0f} 元"),
    _F("kin_cases", "official", "kin_cases", "Assistance cases with a close relative as member.",
       "近亲属低保案件数", "{value:.0f} 件低保/特困案件涉及其近亲属"),
    _F("kin_hits", "official", "kin_hits", "Rule hits on close relatives in the run.",
       "近亲属规则命中", "近亲属被规则命中 {value:.0f} 次", role="context"),
)  # fmt: skip
ENTITIES: tuple[str, ...] = ("recipient", "household", "village", "handler", "official")


def features_of(entity: str, role: str | None = None) -> list[Feature]:
    """The features of one entity kind (of one role), in declaration order."""
    return [f for f in FEATURES if f.entity == entity and role in (None, f.role)]


#: context features by what they say, for the supervised ranker (max over entity kinds)
CONTEXT = {"rule_hits": "hits", "household_hits": "hits", "hits_per_1000": "hits",
           "kin_hits": "hits", "tenure": "tenure", "case_tenure": "tenure", "cadre_kin": "kin",
           "cadre_kin_cases": "kin", "kin_share": "kin"}  # fmt: skip


def feature(entity: str, name: str) -> Feature:
    for f in FEATURES:
        if f.entity == entity and f.name == name:
            return f
    raise KeyError(f"no feature {name!r} for {entity}")


def entity_sql(entity: str, run_id: str | None) -> str:
    """The full query of an entity kind: ``entity_id, village_code`` and one column per feature
    (plus a few context columns, e.g. the item behind a village's ratio)."""
    run = "NULL" if run_id is None else "'" + run_id.replace("'", "''") + "'"
    months = "(" + ", ".join(str(m) for m in DEADLINE_MONTHS) + ")"
    uniform = len(DEADLINE_MONTHS) * DEADLINE_DAYS / 365
    base = BASE[entity].format(
        run=run, deadline_months=months, deadline_days=DEADLINE_DAYS, shrink=SHRINK,
        uniform=f"{uniform:.6f}",
    )  # fmt: skip
    cols = ", ".join(f"CAST({f.sql} AS DOUBLE) AS {f.name}" for f in features_of(entity))
    extra = {"village": ", item_ratio_item", "handler": ", top_surname"}.get(entity, "")
    common = _COMMON.format(run=run)
    # the base's last statement is a SELECT: wrap it as the ``b`` CTE
    head, _, tail = base.rpartition("\nSELECT ")
    body = f"WITH {common}, {head.strip().rstrip(',')}" if head.strip() else f"WITH {common}"
    return (
        f"{body}, feat_base AS (SELECT {tail}) SELECT entity_id, village_code, {cols}{extra} "
        "FROM feat_base "
        "WHERE entity_id IS NOT NULL ORDER BY entity_id"
    )


@dataclass
class EntityFrame:
    """An entity kind's features, or why there are none (status skipped / blind / ok)."""

    entity: str
    status: str
    reason: str
    frame: pl.DataFrame


def _relations(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
        "UNION SELECT view_name FROM duckdb_views() WHERE NOT internal"
    ).fetchall()
    return {r[0] for r in rows}


def compute(con: duckdb.DuckDBPyConnection, run_id: str | None) -> dict[str, EntityFrame]:
    """Every entity kind's features on the warehouse ``con`` for detect run ``run_id``."""
    have = _relations(con)
    out: dict[str, EntityFrame] = {}
    for entity in ENTITIES:
        missing = [t for t in REQUIRED[entity] if t not in have]
        if missing:
            out[entity] = EntityFrame(
                entity, "skipped",
                f"{', '.join(missing)} not in the warehouse (run ingest / resolve / kinship)",
                pl.DataFrame(),
            )  # fmt: skip
            continue
        stand_in = [t for t in OPTIONAL if t not in have]
        sql = entity_sql(entity, run_id)
        if stand_in:
            ctes = ", ".join(f"{t} AS ({OPTIONAL[t]})" for t in stand_in)
            sql = sql.replace("WITH ", f"WITH {ctes}, ", 1)

        # parallel float sums differ in the last bits from run to run: round them away, so the
        # same data gives the same features, fingerprint and scores
        frame = _pl(con.execute(sql)).with_columns(pl.selectors.float().round(9))
        if stand_in:
            status = "blind"
            reason = f"{', '.join(stand_in)} missing: the features reading it are 0"
        elif run_id is None:
            status, reason = "blind", "no detect run: rule-hit features are 0"
        else:
            status, reason = "ok", ""
        if frame.height == 0:
            status, reason = "skipped", "no entities of this kind in the warehouse"
        out[entity] = EntityFrame(entity, status, reason, frame)
    return out
