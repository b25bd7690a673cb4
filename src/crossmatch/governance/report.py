"""The run's governance report: one self-contained HTML file leadership can open anywhere.

Charts are plotly with its JavaScript embedded once in the page (no network needed to view):
clues by rule, by township and by payment month, clue states over runs, the loop metrics
(整改完成率, 制度健全度) over runs, and each finding's figures over runs. Tables list the 类案
findings with their figures and the 纪检监察建议 with their status.

:func:`refresh_and_report` is the one call for the nightly flow: sync the run's clues, analyse
it, store the findings, snapshot the metrics and write the report.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from crossmatch import warehouse as wh_mod
from crossmatch.export.clue_list import _region_names
from crossmatch.governance import findings as fnd
from crossmatch.governance import suggestions as sug
from crossmatch.review.clues import latest_run, sync_warehouse
from crossmatch.review.store import audit, open_store, store_path
from crossmatch.spec.rules import load_rules

KIND_CN = {
    "death_sync_lag": "死亡信息同步滞后",
    "approver_kin": "经办审批人员未回避近亲属",
    "approval_check": "审批核查缺失/未动态复核",
    "concentration": "线索集中",
    "identity_weakness": "身份与账户管理薄弱",
}


@dataclass
class ReportResult:
    path: Path
    findings: fnd.FindingSet
    metrics: dict[str, Any]
    charts: int

    def render(self) -> str:
        m = self.metrics
        rate = m.get("rectification_rate")
        sound = m.get("institutional_soundness")
        return (
            f"{self.findings.render()}\n建议 {m['issued']} 件, 整改完成 {m['completed']} 件, "
            f"整改完成率 {'-' if rate is None else f'{rate:.0%}'}, 制度健全度 "
            f"{'-' if sound is None else f'{sound:.0%}'}\n"
            f"report: {self.path} ({self.charts} charts)"
        )


def refresh(
    warehouse: str | Path,
    run_id: str | None = None,
    *,
    rules_dir: str | Path = "rules",
    store_file: str | Path | None = None,
    params: fnd.Params | None = None,
) -> fnd.FindingSet:
    """Sync ``run_id`` (default: the latest) into the review store, analyse it, store the
    findings (once per run) and the metrics snapshot; returns the findings with trends."""
    store_file = Path(store_file) if store_file else store_path(warehouse)
    wh = wh_mod.connect(warehouse, read_only=True)
    try:
        run_id = run_id or latest_run(wh)
    finally:
        wh.close()
    if run_id is None:
        raise ValueError("no detect run in the warehouse: run `crossmatch detect` first")
    sync_warehouse(warehouse, store_file, run_id, rules_dir)
    wh = wh_mod.connect(warehouse, read_only=True)
    store = open_store(store_file)
    try:
        sug.ensure(store)
        fs = fnd.analyse(
            wh, run_id, clue_ids=fnd.clue_id_map(store), rules_dir=rules_dir, params=params
        )
        fnd.store_findings(store, fs)
        fnd.attach_trends(store, fs)
        sug.record_metrics(store, run_id)
    finally:
        store.close()
        wh.close()
    return fs


def refresh_and_report(
    warehouse: str | Path,
    run_id: str | None = None,
    *,
    rules_dir: str | Path = "rules",
    out: str | Path | None = None,
    store_file: str | Path | None = None,
    params: fnd.Params | None = None,
) -> ReportResult:
    """The nightly step after detect: :func:`refresh`, then :func:`write_report`."""
    fs = refresh(warehouse, run_id, rules_dir=rules_dir, store_file=store_file, params=params)
    if out is None:
        w = Path(warehouse)
        out = w.with_name(f"{w.stem}.report_{fs.run_id}.html")
    return write_report(warehouse, fs, out, store_file=store_file, rules_dir=rules_dir)


# ---------------------------------------------------------------------- the page
def _frame(store: duckdb.DuckDBPyConnection, sql: str, args: list[Any] | None = None) -> list:
    return store.execute(sql, args or []).fetchall()


def write_report(
    warehouse: str | Path,
    fs: fnd.FindingSet,
    out: str | Path,
    *,
    store_file: str | Path | None = None,
    rules_dir: str | Path = "rules",
) -> ReportResult:
    import plotly.graph_objects as go  # lazy: plotly takes a second to import

    titles = {r.id: r.title_zh for r in load_rules(rules_dir)} if Path(rules_dir).is_dir() else {}

    store_file = Path(store_file) if store_file else store_path(warehouse)
    store = open_store(store_file)
    try:
        sug.ensure(store)
        run = fs.run_id
        by_rule = _frame(
            store,
            "SELECT c.rule_id, count(*), sum(n.amount)::DOUBLE FROM clue_night n JOIN clue c "
            "USING (clue_id) WHERE n.run_id = ? AND n.state IN ('new','ongoing','reopened') "
            "GROUP BY 1 ORDER BY 2 DESC",
            [run],
        )
        by_town = _frame(
            store,
            "SELECT left(coalesce(c.village_code, ''), 9) t, count(*) FROM clue_night n "
            "JOIN clue c USING (clue_id) WHERE n.run_id = ? "
            "AND n.state IN ('new','ongoing','reopened') GROUP BY 1 ORDER BY 1",
            [run],
        )
        states = _frame(
            store,
            "SELECT run_id, n_new, n_ongoing, n_reopened, n_closed, n_suppressed, n_unchecked "
            "FROM review_run ORDER BY synced_at, run_id",
        )
        metric_rows = _frame(
            store,
            "SELECT g.run_id, g.metric, g.value FROM governance_metric g "
            "JOIN review_run r USING (run_id) ORDER BY r.synced_at, g.run_id",
        )
        items = sug.suggestions(store)
        m = sug.metrics(store)
        audit(store, "report", {"run_id": run, "file": str(out)})
    finally:
        store.close()
    wh = wh_mod.connect(warehouse, read_only=True)
    try:
        by_month = wh.execute(
            "SELECT period, count(DISTINCT (rule_id, subject)), sum(amount)::DOUBLE FROM hit "
            "WHERE run_id = ? AND coalesce(period, '') <> '' GROUP BY 1 ORDER BY 1",
            [run],
        ).fetchall()

        names = {code[:9]: t for code, (t, _v) in _region_names(wh).items() if t}
    finally:
        wh.close()

    charts: list[tuple[str, Any]] = []
    layout = {"height": 360, "margin": {"l": 60, "r": 20, "t": 50, "b": 80}}
    charts.append(("chart-rule", go.Figure(
        go.Bar(x=[titles.get(r[0], r[0]) for r in by_rule], y=[r[1] for r in by_rule],
               name="线索", customdata=[[r[0], r[2]] for r in by_rule],
               hovertemplate="%{x} (%{customdata[0]}): %{y} 条, %{customdata[1]:,.2f} 元"
                             "<extra></extra>"),
        layout={**layout, "title": "按规则: 在办线索"})))  # fmt: skip
    charts.append(("chart-region", go.Figure(
        go.Bar(x=[names.get(r[0], r[0] or "未知") for r in by_town], y=[r[1] for r in by_town]),
        layout={**layout, "title": "按乡镇: 在办线索"})))  # fmt: skip
    charts.append(("chart-month", go.Figure(
        [go.Scatter(x=[r[0] for r in by_month], y=[r[1] for r in by_month], name="线索数",
                    mode="lines+markers"),
         go.Bar(x=[r[0] for r in by_month], y=[r[2] for r in by_month], name="涉及金额(元)",
                yaxis="y2", opacity=0.4)],
        layout={**layout, "title": "按所属期: 线索与金额",
                "yaxis2": {"overlaying": "y", "side": "right"}})))  # fmt: skip
    runs = [r[0] for r in states]
    charts.append(("chart-states", go.Figure(
        [go.Scatter(x=runs, y=[r[i] for r in states], name=label, mode="lines+markers")
         for i, label in ((1, "新增"), (2, "持续"), (3, "重新出现"), (4, "已消失"),
                          (5, "已排除"), (6, "未核查"))],
        layout={**layout, "title": "各批次线索状态"})))  # fmt: skip
    metric_runs = sorted({r[0] for r in metric_rows}, key=lambda x: runs.index(x)
                         if x in runs else len(runs))  # fmt: skip
    vals = {(r[0], r[1]): r[2] for r in metric_rows}
    charts.append(("chart-metrics", go.Figure(
        [go.Scatter(x=metric_runs, y=[vals.get((x, key)) for x in metric_runs], name=label,
                    mode="lines+markers")
         for key, label in (("rectification_rate", "整改完成率"),
                            ("institutional_soundness", "制度健全度"))],
        layout={**layout, "title": "闭环指标趋势", "yaxis": {"tickformat": ".0%",
                                                             "range": [0, 1.05]}})))  # fmt: skip
    if fs.findings:
        charts.append(("chart-findings", go.Figure(
            [go.Scatter(x=[t["run_id"] for t in f.trend],
                        y=[t["people"] or t["cases"] for t in f.trend],
                        name=f"{KIND_CN.get(f.kind, f.kind)} {f.region} {f.who}".strip(),
                        mode="lines+markers") for f in fs.findings],
            layout={**layout, "title": "类案问题趋势(人数/件数)"})))  # fmt: skip

    parts = []
    for i, (div_id, fig) in enumerate(charts):
        parts.append(
            f'<section class="chart" data-chart="{div_id}">'
            + fig.to_html(full_html=False, include_plotlyjs=(i == 0), div_id=div_id,
                          config={"displaylogo": False, "responsive": True})
            + "</section>"
        )  # fmt: skip
    rate, sound = m.get("rectification_rate"), m.get("institutional_soundness")

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{v:.0%}"

    def e(v: Any) -> str:
        return html.escape("" if v is None else str(v))

    st_rows = "".join(
        f"<tr><td>{e(KIND_CN.get(k, k))}</td><td>{e(st)}</td><td>{e(why)}</td></tr>"
        for k, (st, why) in sorted(fs.status.items())
    )
    f_rows = "".join(
        f"<tr><td>{e(f.finding_id)}</td><td>{e(f.title)}</td><td>{e(f.department)}</td>"
        f"<td>{e(f.region)} {e(f.who)}</td><td class=n>{f.cases}</td><td class=n>{f.people}</td>"
        f"<td class=n>{f.months}</td><td class=n>{f.amount:,.2f}</td>"
        f"<td class=n>{len(f.clue_ids)}</td><td>{e(f.cause)}</td>"
        f"<td>{e(' → '.join(str(t['people'] or t['cases']) for t in f.trend))}</td></tr>"
        for f in fs.findings
    )
    s_rows = "".join(
        f"<tr><td>{e(s['suggestion_id'])}</td><td>{e(s['department'])}</td>"
        f"<td>{e(s['title'])}</td><td>{e(s['issued_on'])}</td><td>{e(s['deadline'])}</td>"
        f"<td>{e(s['status'])}{' (逾期)' if s['overdue'] else ''}</td><td>{e(s['effect'])}</td>"
        f"<td>{e(s['fix'])}</td></tr>"
        for s in items
    )
    total_clues = sum(r[1] for r in by_rule)
    page = f"""<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8">
<title>惠民惠农资金监督报告 {e(run)}</title>
<style>
body {{ font-family: "Noto Sans CJK SC", "Microsoft YaHei", sans-serif; margin: 24px; }}
h1 {{ font-size: 22px; }} h2 {{ font-size: 18px; margin-top: 28px; }}
table {{ border-collapse: collapse; font-size: 13px; margin: 8px 0; }}
td, th {{ border: 1px solid #bbb; padding: 4px 6px; vertical-align: top; }}
th {{ background: #DDEBF7; }} td.n {{ text-align: right; }}
.cards {{ display: flex; gap: 16px; flex-wrap: wrap; }}
.card {{ border: 1px solid #ccc; border-radius: 6px; padding: 10px 16px; min-width: 120px; }}
.card b {{ display: block; font-size: 22px; }}
.grid {{ display: grid; grid-template-columns: repeat(auto-fit, minmax(460px, 1fr)); gap: 12px; }}
</style></head><body>
<h1>惠民惠农资金大数据监督: 类案分析与整改报告</h1>
<p>批次 <code id="run-id">{e(run)}</code>，生成于 {dt.datetime.now():%Y-%m-%d %H:%M}。
所有线索均为待核实的问题线索，不是结论。数据为合成样例。</p>
<div class="cards">
<div class="card">在办线索<b id="m-clues">{total_clues}</b></div>
<div class="card">类案问题<b id="m-findings">{len(fs.findings)}</b></div>
<div class="card">纪检监察建议<b id="m-issued">{m["issued"]}</b></div>
<div class="card">整改完成率<b id="m-rate">{pct(rate)}</b></div>
<div class="card">制度健全度<b id="m-sound">{pct(sound)}</b></div>
</div>
<h2>线索分布</h2><div class="grid">{"".join(parts[:3])}</div>
<h2>类案分析</h2>
<table id="analysis-status"><tr><th>分析</th><th>状态</th><th>说明</th></tr>{st_rows}</table>
<table id="findings"><tr><th>编号</th><th>问题</th><th>责任部门</th><th>地区/人员</th><th>件数</th>
<th>人数</th><th>月数</th><th>涉及金额(元)</th><th>线索</th><th>成因</th><th>趋势</th></tr>{f_rows}</table>
<h2>纪检监察建议及整改</h2>
<table id="suggestions"><tr><th>编号</th><th>部门</th><th>问题</th><th>发出</th><th>期限</th>
<th>状态</th><th>成效</th><th>制度措施</th></tr>{s_rows}</table>
<h2>闭环指标与趋势</h2><div class="grid">{"".join(parts[3:])}</div>
<script type="application/json" id="report-data">{
        html.escape(json.dumps({"run_id": run, "metrics": m, "charts": [c[0] for c in charts],
                                "findings": [f.finding_id for f in fs.findings]},
                               ensure_ascii=False, default=str), quote=False)
    }</script>
</body></html>
"""  # fmt: skip
    p = Path(out)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp")  # written aside, then renamed: never half a page
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, p)
    return ReportResult(p, fs, m, len(charts))
