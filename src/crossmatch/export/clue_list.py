"""The clue list (问题线索清单) for investigators: Excel with Chinese headers, CSV, Parquet.

The workbook has four sheets:

``线索清单``  one row per clue: the columns of the domain notes, the rule's 排除提示, and the
             columns the verifying unit fills in (核查结论 ... 处分人数), frozen header, filters,
             ID and account numbers written as text;
``汇总``      clues and amount at stake by rule and township;
``证据``      one block per clue: every evidence row (department, file, row, decisive values,
             how the identity was matched);
``说明``      what was selected, when, by whom, masked or not, and the verdict vocabulary.

CSV (UTF-8 with BOM, for Excel users) and Parquet carry machine column names (``clue_id``,
``rule_id``, ``subject_id``, ``period_from``, ``period_to``, ``amount`` ...). ID and account
numbers are masked (first 6 and last 4 visible) unless ``unmask=True``; every export, masked or
not, is written to the review store's audit log with its selection and the file's sha256.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import xlsxwriter

from crossmatch import idnumber
from crossmatch import warehouse as wh_mod
from crossmatch.detect.schema import existing_relations
from crossmatch.review.api import Review, mask
from crossmatch.review.clues import VERDICTS
from crossmatch.review.model_scores import entity_scores
from crossmatch.review.store import actor, audit
from crossmatch.spec.sources import load_sources

#: machine column -> Chinese header, in sheet order
COLUMNS: dict[str, str] = {
    "clue_id": "线索编号",
    "run_id": "批次",
    "rule_id": "规则编号",
    "rule_version": "规则版本",
    "title": "问题类型",
    "severity": "风险等级",
    "state": "线索状态",
    "village_code": "属地代码",
    "township": "乡镇(街道)",
    "village": "村(社区)",
    "subject_id": "对象证件号/代码",
    "subject_name": "对象姓名/名称",
    "sex": "性别",
    "age": "年龄",
    "household_no": "户号",
    "related": "关联人员及关系",
    "items": "补贴项目",
    "period_from": "期间起",
    "period_to": "期间止",
    "months": "涉及月数",
    "amount": "涉及金额(元)",
    "amount_formula": "金额口径",
    "first_seen": "首次发现",
    "last_seen": "最近发现",
    "model_score": "模型评分",
    "model_hint": "模型提示",
    "hints": "排除提示(核查要点)",
    "last_verdict": "已有核查结论",
}
#: columns the verifying unit fills in (read back by the feedback import)
FILL_IN: tuple[str, ...] = (
    "核查结论", "核查情况说明", "核查人", "核查日期", "整改措施", "停发金额(元)",
    "应追回金额(元)", "已追回金额(元)", "数据已更正(是/否)", "问责人数", "处分人数",
)  # fmt: skip
SEVERITY_CN = {"high": "高", "medium": "中", "low": "低"}
_ID_LIKE = re.compile(r"^\d{17}[\dXx]$")


@dataclass
class ExportResult:
    path: Path
    rows: int
    sha256: str
    masked: bool


def _age_sex(subject: str, today: dt.date) -> tuple[Any, Any]:
    if not _ID_LIKE.match(subject or ""):
        return None, None
    p = idnumber.parse(subject)
    birth = getattr(p, "birth_date", None)
    sex = getattr(p, "sex", None)
    age = None
    if birth:
        age = today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))
    return age, sex


def _related(evidence: list[dict[str, Any]]) -> str:
    """'关系 姓名(职务)' pairs of favouritism evidence, else ''."""
    out: list[str] = []
    for ev in evidence:
        for r in ev.get("relatives") or []:
            who = r.get("cadre_name") or r.get("official_name") or ""
            rel = r.get("relation") or ""
            post = r.get("post") or ""
            out.append(f"{who}({post}) 的 {rel}".strip())
        if ev.get("kinship_path") and not ev.get("relatives"):
            out.append(str(ev["kinship_path"]))
    return "; ".join(dict.fromkeys(x for x in out if x))


def _items(evidence: list[dict[str, Any]]) -> str:
    items: list[str] = []
    for ev in evidence:
        v = ev.get("items") or ev.get("item")
        if isinstance(v, list):
            items.extend(str(x) for x in v)
        elif v:
            items.append(str(v))
    return "、".join(sorted(dict.fromkeys(items)))


def build_frame(
    review: Review,
    *,
    rule: list[str] | None = None,
    region: str | None = None,
    state: list[str] | None = None,
    run: str | None = None,
    include_closed: bool = False,
    sources_dir: str | Path = "sources",
    clue_ids: list[str] | None = None,
) -> tuple[pl.DataFrame, list[dict[str, Any]]]:
    """The selected clues with every clue-list column (unmasked), and their evidence rows."""
    clues = review.clues(
        rule=rule, region=region, state=state, run=run, include_closed=include_closed,
        unmask=True,
    )  # fmt: skip
    if clue_ids is not None:
        clues = clues.filter(pl.col("clue_id").is_in(clue_ids))
    departments = _departments(sources_dir)
    today = dt.date.today()
    con = wh_mod.connect(review.warehouse, read_only=True)
    try:
        names = _region_names(con)
        households = dict(
            con.execute(
                "SELECT person_id, household_no FROM person WHERE person_id IN (SELECT unnest(?))",
                [clues["subject"].to_list()],
            ).fetchall()
        )
        records: list[dict[str, Any]] = []
        evidence_rows: list[dict[str, Any]] = []
        keys = clues.select("clue_id", "rule_id", "subject", "last_run")
        if run:
            keys = keys.with_columns(pl.lit(run).alias("last_run"))
        con.register("_export_keys", keys.to_arrow())
        by_clue = {
            r[0]: [json.loads(e) if isinstance(e, str) else e for e in r[1]]
            for r in con.execute(
                "SELECT k.clue_id, list(h.evidence::VARCHAR ORDER BY h.period, h.amount) "
                "FROM hit h JOIN _export_keys k ON h.run_id = k.last_run "
                "AND h.rule_id = k.rule_id AND h.subject = k.subject GROUP BY k.clue_id"
            ).fetchall()
        }
        con.unregister("_export_keys")
        model = entity_scores(con, clues["subject"].to_list())
        for c in clues.iter_rows(named=True):
            evidence = by_clue.get(c["clue_id"], [])
            age, sex = _age_sex(c["subject"], today)
            town, village = names.get(c["village_code"] or "", (None, None))
            spec = review.rules.get(c["rule_id"])
            records.append(
                {
                    "clue_id": c["clue_id"], "run_id": run or c["last_run"],
                    "rule_id": c["rule_id"], "rule_version": c["rule_version"],
                    "title": spec.title_zh if spec else c["rule_id"],
                    "severity": SEVERITY_CN.get(c["severity"], c["severity"]),
                    "state": c["state"], "village_code": c["village_code"],
                    "township": town, "village": village, "subject_id": c["subject"],
                    "subject_name": c["subject_name"], "sex": sex, "age": age,
                    "household_no": households.get(c["subject"]),
                    "related": _related(evidence), "items": _items(evidence),
                    "period_from": c["period_from"], "period_to": c["period_to"],
                    "months": c["months"],
                    "amount": None if c["amount"] is None else float(c["amount"]),
                    "amount_formula": spec.amount_formula if spec else None,
                    "first_seen": c["first_seen"], "last_seen": c["last_seen"],
                    "model_score": (model.get(c["subject"]) or {}).get("score"),
                    "model_hint": "；".join((model.get(c["subject"]) or {}).get("reasons", [])),
                    "hints": "\n".join(f"{i + 1}. {h}" for i, h in
                                       enumerate(spec.exclusion_hints)) if spec else "",
                    "last_verdict": c["last_verdict"],
                }
            )  # fmt: skip
            for ev in evidence:
                for r in ev.get("rows") or []:
                    evidence_rows.append(
                        {
                            "clue_id": c["clue_id"],
                            "source": r.get("source", ""),
                            "department": departments.get(r.get("source", ""), ""),
                            "file": r.get("file", ""),
                            "row": r.get("row"),
                            "role": r.get("role", ""),
                            "links": ev.get("identity_links") or [],
                        }
                    )
        _fill_evidence_values(con, evidence_rows)
    finally:
        con.close()
    schema = {k: (pl.Int64 if k in ("rule_version", "months", "age") else
                  pl.Float64 if k in ("amount", "model_score") else
                  pl.Datetime if k in ("first_seen", "last_seen") else pl.String)
              for k in COLUMNS}  # fmt: skip
    frame = pl.DataFrame(records, schema=schema) if records else pl.DataFrame(schema=schema)
    return frame, evidence_rows


def _departments(sources_dir: str | Path) -> dict[str, str]:
    """source id -> department (the parenthesised part of the mapping's description)."""
    out: dict[str, str] = {}
    try:
        specs = load_sources(sources_dir)
    except Exception:  # a broken mapping folder must not stop an export
        return out
    for s in specs:
        m = re.search(r"[(（]([^)）]+)[)）]", s.description or "")
        head = (s.description or "").split("(")[0].strip()
        out[s.id] = f"{m.group(1)} · {head}" if m else head
    return out


def _region_names(con: Any) -> dict[str, tuple[str | None, str | None]]:
    """village_code -> (township, village) from every resolved table that names both."""
    tables = existing_relations(con)
    parts = []
    for t in ("src_payment", "src_assistance", "src_cadre"):
        if t in tables:
            cols = {c[0] for c in con.execute(f'DESCRIBE "{t}"').fetchall()}
            if {"village_code", "village"} <= cols:
                town = "township" if "township" in cols else "NULL"
                parts.append(f'SELECT village_code, {town} AS township, village FROM "{t}"')
    if not parts:
        return {}
    rows = con.execute(
        "SELECT village_code, mode(township ORDER BY township), mode(village ORDER BY village) "
        f"FROM ({' UNION ALL '.join(parts)}) "
        "WHERE village_code IS NOT NULL GROUP BY village_code"
    ).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def _fill_evidence_values(con: Any, rows: list[dict[str, Any]]) -> None:
    """Attach each evidence row's decisive values (the canonical cells, lineage dropped)."""
    tables = existing_relations(con)
    by_source: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_source.setdefault(r["source"], []).append(r)
    for source, items in by_source.items():
        table = f"src_{source}"
        if table not in tables:
            continue
        keys = sorted({(r["file"], int(r["row"])) for r in items if r["row"] is not None})
        found = con.execute(
            f'SELECT * EXCLUDE (_source, _file_hash) FROM "{table}" WHERE (_file, _row) IN '
            "(SELECT (k[1], CAST(k[2] AS INTEGER)) FROM (SELECT unnest(?) AS k))",
            [[list(k) for k in keys]],
        ).fetchall()
        cols = [d[0] for d in con.description]
        values = {}
        for rec in found:
            d = dict(zip(cols, rec, strict=True))
            values[(d["_file"], d["_row"])] = {
                k: v for k, v in d.items()
                if not k.startswith("_") and v not in (None, "")
                and not k.endswith(("_raw", "_status", "_birth_date", "_sex", "_region"))
            }  # fmt: skip
        for r in items:
            r["values"] = values.get((r["file"], r["row"]), {})


def _masked_frame(df: pl.DataFrame) -> pl.DataFrame:
    return df.with_columns(
        pl.col(c).map_elements(mask, return_dtype=pl.String)
        for c in ("subject_id", "household_no", "related")
        if c in df.columns
    )


def _how(links: list[dict[str, Any]], file: str, row: int) -> str:
    for lk in links:
        if lk.get("file") == file and lk.get("row") == row:
            if lk.get("method") == "exact":
                return "身份证号精确匹配"
            p = lk.get("probability")
            return f"{lk.get('method')} 匹配 p={p:.4f}" if p is not None else str(lk.get("method"))
    return ""


def export_clues(
    review: Review,
    out: str | Path,
    *,
    fmt: str | None = None,
    unmask: bool = False,
    rule: list[str] | None = None,
    region: str | None = None,
    state: list[str] | None = None,
    run: str | None = None,
    include_closed: bool = False,
    sources_dir: str | Path = "sources",
    clue_ids: list[str] | None = None,
    extra_note: str = "",
) -> ExportResult:
    """Write the clue list for a selection as xlsx, csv or parquet (by ``fmt`` or suffix)."""
    out = Path(out)
    fmt = (fmt or out.suffix.lstrip(".") or "xlsx").lower()
    if fmt not in ("xlsx", "csv", "parquet"):
        raise ValueError(f"format {fmt!r}: use xlsx, csv or parquet")
    selection = {"rule": rule, "region": region, "state": state, "run": run,
                 "include_closed": include_closed}  # fmt: skip
    frame, evidence = build_frame(
        review, rule=rule, region=region, state=state, run=run,
        include_closed=include_closed, sources_dir=sources_dir, clue_ids=clue_ids,
    )  # fmt: skip
    if clue_ids is not None:
        selection["clue_ids"] = len(clue_ids)
    shown = frame if unmask else _masked_frame(frame)
    if not unmask:
        for e in evidence:
            e["values"] = {k: mask(v) for k, v in e.get("values", {}).items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        with open(out, "w", encoding="utf-8-sig", newline="") as fh:
            fh.write(shown.write_csv())
    elif fmt == "parquet":
        shown.write_parquet(out)
    else:
        _write_xlsx(out, shown, evidence, review, selection, unmask, extra_note)
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    store = review._store()
    try:
        audit(store, "export", {"file": str(out), "format": fmt, "rows": frame.height,
                                "masked": not unmask, "sha256": digest, **selection})  # fmt: skip
    finally:
        store.close()
    return ExportResult(out, frame.height, digest, not unmask)


def _write_xlsx(
    path: Path,
    df: pl.DataFrame,
    evidence: list[dict[str, Any]],
    review: Review,
    selection: dict[str, Any],
    unmask: bool,
    extra_note: str = "",
) -> None:
    wb = xlsxwriter.Workbook(str(path), {"strings_to_numbers": False, "remove_timezone": True})
    wb.set_properties({"title": "问题线索清单", "created": dt.datetime(2000, 1, 1)})
    head = wb.add_format({"bold": True, "bg_color": "#DDEBF7", "border": 1, "text_wrap": True,
                          "valign": "vcenter"})  # fmt: skip
    fill = wb.add_format({"bold": True, "bg_color": "#FFF2CC", "border": 1, "text_wrap": True,
                          "valign": "vcenter"})  # fmt: skip
    wrap = wb.add_format({"text_wrap": True, "valign": "top"})
    money = wb.add_format({"num_format": "#,##0.00"})
    when = wb.add_format({"num_format": "yyyy-mm-dd hh:mm"})
    # 线索清单
    ws = wb.add_worksheet("线索清单")
    headers = list(COLUMNS.values()) + list(FILL_IN)
    for j, h in enumerate(headers):
        ws.write_string(0, j, h, head if j < len(COLUMNS) else fill)
    keys = list(COLUMNS)
    for i, rec in enumerate(df.iter_rows(named=True), start=1):
        for j, k in enumerate(keys):
            v = rec[k]
            if v is None:
                continue
            if k == "amount":
                ws.write_number(i, j, float(v), money)
            elif k == "model_score":
                ws.write_number(i, j, float(v))
            elif k in ("months", "age", "rule_version"):
                ws.write_number(i, j, int(v))
            elif isinstance(v, dt.datetime):
                ws.write_datetime(i, j, v, when)
            else:
                ws.write_string(i, j, str(v), wrap if k in ("hints", "related") else None)
    widths = {"clue_id": 26, "title": 18, "subject_id": 21, "hints": 50, "related": 30,
              "amount_formula": 30, "first_seen": 17, "last_seen": 17, "township": 10,
              "village": 12, "items": 16, "run_id": 22, "model_hint": 40}  # fmt: skip
    for j, k in enumerate(keys):
        ws.set_column(j, j, widths.get(k, 11))
    ws.set_column(len(keys), len(headers) - 1, 14)
    ws.set_row(0, 32)
    ws.freeze_panes(1, 1)
    ws.autofilter(0, 0, max(df.height, 1), len(headers) - 1)
    verdict_col = len(keys)
    ws.data_validation(1, verdict_col, max(df.height, 1), verdict_col,
                       {"validate": "list", "source": list(VERDICTS)})  # fmt: skip
    # 汇总
    ss = wb.add_worksheet("汇总")
    summary = (
        df.with_columns(pl.col("township").fill_null("(未知)"))
        .group_by("title", "rule_id", "township")
        .agg(pl.len().alias("clues"), pl.col("amount").sum().alias("amount"))
        .sort("rule_id", "township")
    )
    for j, h in enumerate(("问题类型", "规则编号", "乡镇(街道)", "线索数", "涉及金额(元)")):
        ss.write_string(0, j, h, head)
    for i, r in enumerate(summary.iter_rows(), start=1):
        ss.write_string(i, 0, r[0] or "")
        ss.write_string(i, 1, r[1] or "")
        ss.write_string(i, 2, r[2] or "")
        ss.write_number(i, 3, r[3])
        ss.write_number(i, 4, float(r[4] or 0), money)
    n = summary.height + 1
    ss.write_string(n, 0, "合计", head)
    ss.write_number(n, 3, df.height)
    ss.write_number(n, 4, float(df["amount"].sum() or 0), money)
    ss.set_column(0, 0, 22)
    ss.set_column(1, 1, 26)
    ss.set_column(2, 4, 14)
    ss.freeze_panes(1, 0)
    # 证据
    es = wb.add_worksheet("证据")
    for j, h in enumerate(
        ("线索编号", "来源部门", "数据文件", "行号", "角色", "关键值", "身份匹配")
    ):
        es.write_string(0, j, h, head)
    for i, e in enumerate(evidence, start=1):
        es.write_string(i, 0, e["clue_id"])
        es.write_string(i, 1, e["department"] or e["source"])
        es.write_string(i, 2, e["file"])
        if e["row"] is not None:
            es.write_number(i, 3, int(e["row"]))
        es.write_string(i, 4, e["role"])
        vals = "; ".join(f"{k}={v}" for k, v in e.get("values", {}).items())
        es.write_string(i, 5, vals, wrap)
        es.write_string(i, 6, _how(e["links"], e["file"], e["row"]))
    for j, w in enumerate((26, 26, 36, 8, 10, 90, 22)):
        es.set_column(j, j, w)
    es.freeze_panes(1, 1)
    es.autofilter(0, 0, max(len(evidence), 1), 6)
    # 说明
    ns = wb.add_worksheet("说明")
    lines = [
        ("导出时间", dt.datetime.now().strftime("%Y-%m-%d %H:%M")),
        ("导出人", actor()),
        ("数据仓库", str(review.warehouse)),
        ("筛选条件", json.dumps(selection, ensure_ascii=False)),
        ("线索数", str(df.height)),
        *([("交办", extra_note)] if extra_note else []),
        ("证件号", "已完整显示（已记录审计）" if unmask else "已脱敏：仅显示前6位和后4位"),
        ("核查结论取值", " / ".join(VERDICTS)),
        ("说明", "每条线索是待核实的问题线索，不是结论。请逐项对照“排除提示”核查，"
                 "在黄色列中填写核查与整改情况后交回。"),
    ]  # fmt: skip
    for i, (k, v) in enumerate(lines):
        ns.write_string(i, 0, k, head)
        ns.write_string(i, 1, v, wrap)
    ns.set_column(0, 0, 14)
    ns.set_column(1, 1, 90)
    wb.close()
