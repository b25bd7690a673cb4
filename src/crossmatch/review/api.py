"""The analyst's API for notebooks: list clues, explain one, look at a person, record verdicts.

>>> from crossmatch.review import Review
>>> rv = Review("crossmatch.duckdb")          # the review store sits beside it
>>> rv.clues(state="new").head()             # what is new since the last night, by amount
>>> print(rv.explain("DEC-341122001-3F9A2C1B"))
>>> rv.mark("DEC-341122001-3F9A2C1B", "不属实-数据错误", note="死亡日期录入错误", author="王审查")

Every ID and account number is masked (first 6 and last 4 visible) unless ``unmask=True`` is
passed, which is written to the audit log with who asked. Connections are opened per call and
closed again, so a notebook left open never blocks the nightly run.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import polars as pl

from crossmatch import warehouse as wh_mod
from crossmatch.detect.schema import existing_relations
from crossmatch.identity import explain as identity_explain
from crossmatch.review.clues import VERDICTS, SyncResult, latest_run, sync_run
from crossmatch.review.model_scores import entity_scores
from crossmatch.review.store import actor, audit, open_store, store_path
from crossmatch.spec.rules import RuleSpec, load_rules

if TYPE_CHECKING:
    import altair as alt

_LONG_DIGITS = re.compile(r"\d{6}[0-9Xx*]{4,}\d{3}[0-9Xx]")
_SECRET_COLUMN = re.compile(r"(^|_)(id|id_raw|account|subject|person_id|pid|linked_to)$")
SEVERITY_RANK = {"high": 0, "medium": 1, "low": 2}


def mask(value: Any) -> Any:
    """``341122195609279642`` -> ``341122********9642``; other values unchanged."""
    if not isinstance(value, str):
        return value
    return _LONG_DIGITS.sub(lambda m: m.group()[:6] + "*" * (len(m.group()) - 10)
                            + m.group()[-4:], value)  # fmt: skip


def _pl(cur: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """A query result as a polars frame (DuckDB 2 results have no ``.pl()``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "extra copy": results here are small
        out = pl.from_arrow(cur.to_arrow_table())
    assert isinstance(out, pl.DataFrame)
    return out


def _mask_frame(df: pl.DataFrame) -> pl.DataFrame:
    cols = [c for c, t in df.schema.items() if t == pl.String]
    return df.with_columns(pl.col(c).map_elements(mask, return_dtype=pl.String) for c in cols)


def _mask_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _mask_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_json(v) for v in value]
    return mask(value)


@dataclass
class EvidenceRow:
    """One source row behind a clue, with lineage and how its person was matched."""

    source: str
    file: str
    row: int
    role: str
    values: dict[str, Any]
    identity: list[dict[str, Any]] = field(default_factory=list)

    def line(self) -> str:
        how = "; ".join(
            f"{i.get('role')}: {i.get('method')}"
            + (
                f" p={i['probability']:.4f}"
                if i.get("method") != "exact" and i.get("probability") is not None
                else ""
            )
            + (f" ({i['reasons']})" if i.get("reasons") else "")
            for i in self.identity
        )
        shown = {
            k: str(v) for k, v in self.values.items()
            if v not in (None, "") and not (k.endswith("_raw") and v == self.values.get(k[:-4]))
        }  # fmt: skip
        cells = ", ".join(f"{k}={v}" for k, v in shown.items())
        return f"[{self.source}] {self.file} 第{self.row}行  {cells}" + (
            f"\n      identity: {how}" if how else ""
        )


@dataclass
class Explanation:
    """Everything a verifier needs about one clue."""

    clue: dict[str, Any]
    rule: RuleSpec | None
    rows: list[EvidenceRow]
    kinship: list[str]
    evidence: list[dict[str, Any]]
    history: pl.DataFrame
    verdicts: pl.DataFrame
    changes: list[str]
    #: the subject's unsupervised score (crossmatch score): {"score": 0-100, "entity", "rank",
    #: "reasons"}; None when the warehouse was never scored or the subject is not an entity
    model: dict[str, Any] | None = None

    def __str__(self) -> str:
        c = self.clue
        title = self.rule.title_zh if self.rule else c["rule_id"]
        out = [
            f"线索 {c['clue_id']}  {title} ({c['rule_id']} v{c['rule_version']})  "
            f"风险 {c['severity']}  状态 {c['state']}",
            f"对象 {c['subject_name'] or ''} {c['subject']}  属地 {c['village_code'] or ''}",
            f"期间 {c['period_from'] or '-'} .. {c['period_to'] or '-'}  月数 {c['months']}  "
            f"涉及金额 {c['amount']} ({c['amount_formula'] or ''})",
            f"首次发现 {c['first_seen']}  最近 {c['last_seen']}",
        ]
        if self.model:
            m = self.model
            out.append(f"模型评分 {m['score']:.1f} ({m['entity']} 第{m['rank']}名)")
            out += [f"  模型提示: {r}" for r in m["reasons"]]
        if self.kinship:
            out.append("亲属关系:")
            out += [f"  {k}" for k in self.kinship]
        out.append(f"证据 ({len(self.rows)} 行):")
        out += [f"  {r.line()}" for r in self.rows]
        if self.changes:
            out.append("自上次核查以来的变化:")
            out += [f"  {x}" for x in self.changes]
        if self.rule and self.rule.exclusion_hints:
            out.append("排除提示 (核查时逐项排除):")
            out += [f"  [ ] {h}" for h in self.rule.exclusion_hints]
        if self.verdicts.height:
            out.append("核查结论:")
            out += [
                f"  {r['recorded_at']} {r['verdict']} {r['author']}: {r['note']}"
                for r in self.verdicts.iter_rows(named=True)
            ]
        return "\n".join(out)

    def _repr_markdown_(self) -> str:
        return "```\n" + str(self) + "\n```"


def _kinship_paths(evidence: list[dict[str, Any]]) -> list[str]:
    paths: list[str] = []

    def walk(v: Any) -> None:
        if isinstance(v, dict):
            for k, x in v.items():
                if k in ("kinship_path", "path") and isinstance(x, str):
                    paths.append(x)
                elif k == "paths" and isinstance(x, list):
                    paths.extend(str(p) for p in x)
                else:
                    walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    walk(evidence)
    return sorted(dict.fromkeys(p for p in paths if p.strip()))


class Review:
    """Clues of one warehouse and its review store (see the module docstring)."""

    def __init__(
        self,
        warehouse: str | Path = "crossmatch.duckdb",
        store: str | Path | None = None,
        rules_dir: str | Path = "rules",
    ) -> None:
        self.warehouse = Path(warehouse)
        self.store_file = Path(store) if store else store_path(self.warehouse)
        self.rules_dir = Path(rules_dir)
        self._rules: dict[str, RuleSpec] | None = None

    # ------------------------------------------------------------------ plumbing
    def _wh(self) -> duckdb.DuckDBPyConnection:
        return wh_mod.connect(self.warehouse, read_only=True)

    def _store(self, read_only: bool = False) -> duckdb.DuckDBPyConnection:
        if read_only and not self.store_file.exists():
            open_store(self.store_file).close()  # an empty store is a valid answer
        return open_store(self.store_file, read_only=read_only)

    @property
    def rules(self) -> dict[str, RuleSpec]:
        if self._rules is None:
            self._rules = (
                {s.id: s for s in load_rules(self.rules_dir)} if self.rules_dir.is_dir() else {}
            )
        return self._rules

    def _audit_unmask(self, what: str, key: str) -> None:
        store = self._store()
        try:
            audit(store, "unmask", {"what": what, "key": key})
        finally:
            store.close()

    # ------------------------------------------------------------------ nights
    def sync(self, run_id: str | None = None) -> SyncResult:
        """Record the clues of detect run ``run_id`` (default: the latest) in the store."""
        wh, store = self._wh(), self._store()
        try:
            cats = {k: v.category for k, v in self.rules.items()}
            return sync_run(wh, store, run_id, categories=cats, warehouse_name=str(self.warehouse))
        finally:
            store.close()
            wh.close()

    def runs(self) -> pl.DataFrame:
        """Synced nights, newest first, with their counts per state."""
        store = self._store(read_only=True)
        try:
            return _pl(
                store.execute("SELECT * FROM review_run ORDER BY synced_at DESC, run_id DESC")
            )
        finally:
            store.close()

    # ------------------------------------------------------------------ listing
    def clues(
        self,
        *,
        rule: str | list[str] | None = None,
        category: str | None = None,
        region: str | None = None,
        state: str | list[str] | None = None,
        severity: str | None = None,
        min_amount: float | None = None,
        seen_since: str | None = None,
        run: str | None = None,
        include_closed: bool = False,
        unmask: bool = False,
        limit: int | None = None,
    ) -> pl.DataFrame:
        """Clues as a polars frame, most severe and largest amount first.

        ``region`` is a code prefix at any level (county 6, township 9, village 12 digits);
        ``state`` one or more of new / ongoing / reopened / closed / suppressed / unchecked
        (default: everything but closed and suppressed); ``run`` the clues one night saw.
        """
        where: list[str] = ["TRUE"]
        params: list[Any] = []
        if rule:
            where.append("list_contains(?, c.rule_id)")
            params.append([rule] if isinstance(rule, str) else list(rule))
        if category:
            where.append("c.category = ?")
            params.append(category)
        if region:
            where.append("starts_with(coalesce(c.village_code, ''), ?)")
            params.append(region)
        if state:
            where.append("list_contains(?, c.state)")
            params.append([state] if isinstance(state, str) else list(state))
        elif not include_closed:
            where.append("c.state NOT IN ('closed', 'suppressed')")
        if severity:
            where.append("c.severity = ?")
            params.append(severity)
        if min_amount is not None:
            where.append("c.amount >= ?")
            params.append(min_amount)
        if seen_since:
            where.append("c.last_seen >= CAST(? AS TIMESTAMP)")
            params.append(seen_since)
        if run:
            where.append("c.clue_id IN (SELECT clue_id FROM clue_night WHERE run_id = ?)")
            params.append(run)
        sql = f"""
            SELECT c.clue_id, c.rule_id, c.category, c.severity, c.state, c.subject,
                   c.subject_name, c.village_code, c.period_from, c.period_to, c.months,
                   c.hits, c.amount, c.first_seen, c.last_seen, c.rule_version,
                   v.verdict AS last_verdict, c.last_run
            FROM clue c
            LEFT JOIN (SELECT clue_id, arg_max(verdict, recorded_at) AS verdict
                       FROM verdict GROUP BY clue_id) v USING (clue_id)
            WHERE {" AND ".join(where)}
            ORDER BY CASE c.severity WHEN 'high' THEN 0 WHEN 'medium' THEN 1 ELSE 2 END,
                     c.amount DESC NULLS LAST, c.clue_id
            {f"LIMIT {int(limit)}" if limit else ""}
        """
        store = self._store(read_only=True)
        try:
            df = _pl(store.execute(sql, params))
        finally:
            store.close()
        if unmask:
            self._audit_unmask("clues", json.dumps({"rule": rule, "region": region}))
            return df
        return _mask_frame(df)

    def new(self, **filters: Any) -> pl.DataFrame:
        """Clues that are new or reopened on the last synced night."""
        return self.clues(state=["new", "reopened"], **filters)

    def history(self, clue_id: str) -> pl.DataFrame:
        """The nights that saw a clue, oldest first, with the state and amount each night."""
        store = self._store(read_only=True)
        try:
            return _pl(
                store.execute(
                    "SELECT n.run_id, r.synced_at, n.state, n.amount, n.months, n.fingerprint "
                    "FROM clue_night n LEFT JOIN review_run r USING (run_id) "
                    "WHERE n.clue_id = ? ORDER BY r.synced_at, n.run_id",
                    [clue_id],
                )
            )
        finally:
            store.close()

    # ------------------------------------------------------------------ verdicts
    def mark(self, clue_id: str, verdict: str, note: str = "", author: str | None = None) -> None:
        """Append a verdict (属实 / 部分属实 / 不属实-数据错误 / 不属实-政策允许 / 无法核实).

        A 不属实 verdict suppresses the clue on later nights for as long as its evidence stays
        the same; the history is never rewritten.
        """
        if verdict not in VERDICTS:
            raise ValueError(f"verdict {verdict!r} is not one of {', '.join(VERDICTS)}")
        store = self._store()
        try:
            row = store.execute(
                "SELECT fingerprint, evidence_summary FROM clue WHERE clue_id = ?", [clue_id]
            ).fetchone()
            if row is None:
                raise KeyError(f"no clue {clue_id!r} in {self.store_file}")
            who = author or actor()
            with wh_mod.transaction(store):
                store.execute(
                    "INSERT INTO verdict VALUES (?, ?, ?, ?, now()::TIMESTAMP, ?, ?)",
                    [clue_id, verdict, note, who, row[0], row[1]],
                )
                audit(store, "verdict", {"clue_id": clue_id, "verdict": verdict, "author": who})
        finally:
            store.close()

    def verdicts(self, clue_id: str | None = None) -> pl.DataFrame:
        """The verdict history (all clues, or one), oldest first."""
        store = self._store(read_only=True)
        try:
            sql = "SELECT clue_id, verdict, note, author, recorded_at, fingerprint FROM verdict"
            if clue_id:
                return _pl(
                    store.execute(sql + " WHERE clue_id = ? ORDER BY recorded_at", [clue_id])
                )
            return _pl(store.execute(sql + " ORDER BY recorded_at"))
        finally:
            store.close()

    # ------------------------------------------------------------------ explaining
    def explain(self, clue_id: str, *, unmask: bool = False) -> Explanation:
        """Every evidence row with lineage and identity match, the kinship path, the 排除提示."""
        store = self._store(read_only=True)
        try:
            cur = store.execute("SELECT * FROM clue WHERE clue_id = ?", [clue_id])
            row = cur.fetchone()
            if row is None:
                raise KeyError(f"no clue {clue_id!r} in {self.store_file}")
            clue = dict(zip([d[0] for d in cur.description], row, strict=True))
            verdicts = _pl(
                store.execute(
                    "SELECT verdict, note, author, recorded_at, evidence_summary FROM verdict "
                    "WHERE clue_id = ? ORDER BY recorded_at",
                    [clue_id],
                )
            )
        finally:
            store.close()
        history = self.history(clue_id)
        wh = self._wh()
        try:
            run = clue["last_run"]
            hits = wh.execute(
                "SELECT period, amount, evidence FROM hit WHERE run_id = ? AND rule_id = ? "
                "AND subject = ? ORDER BY period, amount",
                [run, clue["rule_id"], clue["subject"]],
            ).fetchall()
            evidence = [json.loads(h[2]) if isinstance(h[2], str) else h[2] for h in hits]
            rows = self._evidence_rows(wh, evidence)
            model = entity_scores(wh, [clue["subject"]]).get(clue["subject"])
        finally:
            wh.close()
        changes = _changes(verdicts, clue)
        if unmask:
            self._audit_unmask("explain", clue_id)
        else:
            clue = {k: mask(v) for k, v in clue.items()}
            for r in rows:
                r.values = {k: mask(v) for k, v in r.values.items()}
                r.identity = [_mask_json(i) for i in r.identity]
            evidence = [_mask_json(e) for e in evidence]
        kin = _kinship_paths(evidence)
        return Explanation(
            clue=clue,
            rule=self.rules.get(clue["rule_id"]),
            rows=rows,
            kinship=kin if unmask else [mask(k) for k in kin],
            evidence=evidence,
            history=history,
            verdicts=verdicts.drop("evidence_summary"),
            changes=changes,
            model=model,
        )

    @staticmethod
    def _evidence_rows(
        wh: duckdb.DuckDBPyConnection, evidence: list[dict[str, Any]]
    ) -> list[EvidenceRow]:
        seen: dict[tuple[str, str, int, str], EvidenceRow] = {}
        links: dict[tuple[str, int, str], dict[str, Any]] = {}
        for ev in evidence:
            for lk in ev.get("identity_links") or []:
                links[(lk["file"], int(lk["row"]), lk["role"])] = lk
            for r in ev.get("rows") or []:
                key = (r.get("source", ""), r["file"], int(r["row"]), r.get("role", ""))
                seen.setdefault(key, EvidenceRow(key[0], key[1], key[2], key[3], {}))
        tables = existing_relations(wh)
        by_source: dict[str, list[EvidenceRow]] = {}
        for er in seen.values():
            by_source.setdefault(er.source, []).append(er)
        for source, ers in by_source.items():
            table = f"src_{source}"
            if table not in tables:
                continue
            keys = [[e.file, e.row] for e in ers]
            df = _pl(
                wh.execute(
                    f'SELECT * EXCLUDE (_source, _file_hash) FROM "{table}" '
                    "WHERE (_file, _row) IN (SELECT (k[1], CAST(k[2] AS INTEGER)) FROM "
                    "(SELECT unnest(?) AS k))",
                    [keys],
                )
            )
            for rec in df.iter_rows(named=True):
                for e in ers:
                    if e.file == rec["_file"] and e.row == rec["_row"]:
                        e.values = {
                            k: v for k, v in rec.items()
                            if not k.startswith("_") and not k.endswith(("_birth_date", "_sex",
                                                                         "_region"))
                        }  # fmt: skip
        for er in seen.values():
            for (file, row, role), lk in links.items():
                if file == er.file and row == er.row:
                    info = dict(lk)
                    if lk.get("method") in ("fuzzy", "judgement"):
                        try:
                            w = identity_explain(wh, er.source, file, row, role)
                            info["reasons"] = ", ".join(
                                f"{c}={lvl}({wt:+.1f})"
                                for c, lvl, wt in zip(w["comparison"], w["level"], w["weight"],
                                                      strict=True)
                                if c != "prior"
                            )  # fmt: skip
                        except duckdb.Error:
                            info["reasons"] = ""
                    er.identity.append(info)
        return sorted(seen.values(), key=lambda e: (e.source, e.file, e.row, e.role))

    # ------------------------------------------------------------------ people
    def person(self, pid: str, *, unmask: bool = False) -> dict[str, pl.DataFrame]:
        """A person across every source: records, household, relatives and clues."""
        wh = self._wh()
        try:
            tables = existing_relations(wh)
            person = _pl(wh.execute("SELECT * FROM person WHERE person_id = ?", [pid]))
            records = _pl(
                wh.execute(
                    "SELECT source, file, row, role, method, probability FROM identity_link "
                    "WHERE person_id = ? ORDER BY source, file, row, role",
                    [pid],
                )
            )
            household = pl.DataFrame()
            if person.height and person["household_no"][0]:
                household = _pl(
                    wh.execute(
                        "SELECT person_id, name, birth_date, sex, death_date FROM person "
                        "WHERE household_no = ? ORDER BY birth_date",
                        [person["household_no"][0]],
                    )
                )
            relatives = pl.DataFrame()
            if "kin_relative" in tables:
                relatives = _pl(
                    wh.execute(
                        "SELECT k.relative_pid, p.name, k.relation_cn, k.path, k.valid_from, "
                        "k.valid_to FROM kin_relative k LEFT JOIN person p "
                        "ON p.person_id = k.relative_pid WHERE k.person_pid = ? "
                        "ORDER BY k.hops, k.relation, k.relative_pid",
                        [pid],
                    )
                )
        finally:
            wh.close()
        store = self._store(read_only=True)
        try:
            clues = _pl(
                store.execute(
                    "SELECT clue_id, rule_id, state, period_from, period_to, amount FROM clue "
                    "WHERE subject = ? ORDER BY clue_id",
                    [pid],
                )
            )
        finally:
            store.close()
        out = {
            "person": person,
            "records": records,
            "household": household,
            "relatives": relatives,
            "clues": clues,
        }
        if unmask:
            self._audit_unmask("person", pid)
            return out
        return {k: _mask_frame(v) for k, v in out.items()}

    # ------------------------------------------------------------------ charts
    def chart(self, by: str = "rule") -> alt.Chart:
        """An altair chart of the open clues: ``by`` rule, region (township), month or state."""
        import altair as alt  # lazy: half a second to import, and only charts need it

        df = self.clues(include_closed=True).with_columns(pl.col("amount").cast(pl.Float64))
        if by == "rule":
            data = df.group_by("rule_id").agg(pl.len().alias("clues"), pl.col("amount").sum())
            return (
                alt.Chart(data.to_pandas())
                .mark_bar()
                .encode(x="clues:Q", y=alt.Y("rule_id:N", sort="-x"), tooltip=["amount:Q"])
                .properties(title="线索 by rule")
            )
        if by == "region":
            data = (
                df.with_columns(pl.col("village_code").str.slice(0, 9).alias("township"))
                .group_by("township")
                .agg(pl.len().alias("clues"), pl.col("amount").sum())
            )
            return (
                alt.Chart(data.to_pandas())
                .mark_bar()
                .encode(x="amount:Q", y=alt.Y("township:N", sort="-x"), tooltip=["clues:Q"])
                .properties(title="涉及金额 by township")
            )
        if by == "month":
            data = (
                df.filter(pl.col("period_from").is_not_null())
                .group_by("period_from")
                .agg(pl.len().alias("clues"))
            )
            return (
                alt.Chart(data.to_pandas())
                .mark_line(point=True)
                .encode(x="period_from:O", y="clues:Q")
                .properties(title="线索 by first month")
            )
        if by == "state":
            data = df.group_by("state", "rule_id").agg(pl.len().alias("clues"))
            return (
                alt.Chart(data.to_pandas())
                .mark_bar()
                .encode(x="clues:Q", y="rule_id:N", color="state:N")
                .properties(title="new / ongoing / reopened / closed")
            )
        raise ValueError(f"by={by!r}: one of rule, region, month, state")

    def latest_run(self) -> str | None:
        wh = self._wh()
        try:
            return latest_run(wh)
        finally:
            wh.close()


def _changes(verdicts: pl.DataFrame, clue: dict[str, Any]) -> list[str]:
    """What changed in the evidence since the last verdict (periods and amounts)."""
    if not verdicts.height:
        return []
    before_text = verdicts["evidence_summary"][-1]
    if not before_text or before_text == clue["evidence_summary"]:
        return []
    before = {(d["period"], json.dumps(d["evidence"], sort_keys=True)): d
              for d in json.loads(before_text)}  # fmt: skip
    now = {(d["period"], json.dumps(d["evidence"], sort_keys=True)): d
           for d in json.loads(clue["evidence_summary"])}  # fmt: skip
    out = []
    for k in sorted(set(now) - set(before)):
        out.append(f"+ {k[0] or '(no period)'} amount {now[k]['amount']}")
    for k in sorted(set(before) - set(now)):
        out.append(f"- {k[0] or '(no period)'} amount {before[k]['amount']}")
    return out
