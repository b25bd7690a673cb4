"""The HTML report: self-contained, and rendered with its charts in a real headless browser."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from crossmatch.governance import refresh_and_report
from crossmatch.review.store import open_store, store_path

CHROMIUM = next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser")
                 if Path(p).exists()), shutil.which("chromium"))  # fmt: skip


def test_report_is_self_contained(warehouse: Path, tmp_path: Path) -> None:
    res = refresh_and_report(warehouse, rules_dir="rules", out=tmp_path / "r.html")
    page = res.path.read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]+src=", page)  # plotly.js is embedded, not fetched
    assert page.count("Plotly.newPlot") == res.charts >= 6
    data = json.loads(re.search(r'id="report-data">(.*?)</script>', page, re.S)[1])
    assert data["run_id"] == res.findings.run_id
    assert set(data["findings"]) == {f.finding_id for f in res.findings.findings}
    assert "死亡信息同步滞后" in page and "审批人" in page


def test_report_renders_in_a_headless_browser(warehouse: Path, tmp_path: Path) -> None:
    if CHROMIUM is None:
        pytest.skip("no chromium on this machine (.ci/run installs Debian's chromium with apt)")
    sync_api = pytest.importorskip("playwright.sync_api")
    res = refresh_and_report(warehouse, rules_dir="rules", out=tmp_path / "r.html")
    requests: list[str] = []
    errors: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()

            def route(r):  # anything but the file itself is a network request: refuse it
                requests.append(r.request.url)
                return r.continue_() if r.request.url.startswith("file:") else r.abort()

            page.route("**/*", route)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(res.path.as_uri())
            page.wait_for_function(
                f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {res.charts}",
                timeout=60_000,
            )
            plots = page.locator(".js-plotly-plot").count()
            bars = page.evaluate("document.querySelectorAll('#chart-rule .bars path').length")
            findings = page.locator("#m-findings").inner_text()
            rows = page.locator("#findings tr").count()
        finally:
            browser.close()
    assert errors == []
    assert [u for u in requests if not u.startswith("file:")] == []
    assert plots == res.charts
    store = open_store(store_path(warehouse), read_only=True)
    try:
        rules = store.execute(
            "SELECT count(DISTINCT c.rule_id) FROM clue_night n JOIN clue c USING (clue_id) "
            "WHERE n.run_id = ? AND n.state IN ('new', 'ongoing', 'reopened')",
            [res.findings.run_id],
        ).fetchone()[0]
    finally:
        store.close()
    assert bars == rules >= 10  # one bar per rule with open clues
    assert int(findings) == len(res.findings.findings)
    assert rows == len(res.findings.findings) + 1
