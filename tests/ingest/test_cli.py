"""The `crossmatch ingest` and `crossmatch validate` commands (exit codes, output)."""

from __future__ import annotations

from click.testing import CliRunner

from crossmatch.cli import main

from .conftest import PAY_HEADER, PAYMENT_YAML, write_csv


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_ingest_prints_per_file_counts_and_per_source_table(county):
    args = [
        "ingest",
        "--raw",
        str(county / "raw"),
        "--sources",
        str(county / "sources"),
        "--warehouse",
        str(county / "w.duckdb"),
    ]
    res = invoke(*args)
    assert res.exit_code == 0, res.output
    assert "payment: finance/q1.csv: read 4 = loaded 4 + quarantined 0 (duplicates 1" in res.output
    lines = res.output.splitlines()
    head = next(i for i, x in enumerate(lines) if x.startswith("source "))
    assert lines[head].split() == [
        "source",
        "files",
        "new",
        "same",
        "failed",
        "rows",
        "loaded",
        "quarant.",
        "dups",
        "filtered",
        "summary",
        "copies",
        "s",
    ]
    assert lines[head + 2].split()[:9] == ["payment", "1", "1", "0", "0", "4", "4", "0", "1"]
    again = invoke(*args)
    assert "payment: finance/q1.csv: unchanged, skipped" in again.output


def test_ingest_exit_code_4_when_a_file_failed(county):
    write_csv(county / "raw/finance/q2.csv", [PAY_HEADER])
    (county / "raw/finance/q3.csv").write_bytes(b"")
    res = invoke(
        "ingest",
        "--raw",
        str(county / "raw"),
        "--sources",
        str(county / "sources"),
        "--warehouse",
        str(county / "w.duckdb"),
    )
    assert res.exit_code == 4
    assert "FAILED: " in res.output and "the file is empty (0 bytes)" in res.output


def test_validate_ok_and_problems(county):
    ok = invoke(  # one source only: the rules reading others would be skipped
        "validate", "--sources", str(county / "sources"), "--raw", str(county / "raw"),
        "--allow-blind",
    )  # fmt: skip
    assert ok.exit_code == 0 and ok.output.startswith("ok: ")
    (county / "sources/payment.yaml").write_text(
        PAYMENT_YAML.replace("normalizer: date", "normalizer: dat"), "utf-8"
    )
    bad = invoke("validate", "--sources", str(county / "sources"))
    assert bad.exit_code == 3
    assert bad.output.splitlines()[0].endswith(
        "payment.yaml:9: field 'pay_date': unknown normalizer 'dat'; fix: did you mean 'date'?"
    )


def test_ingest_workers_and_memory_limit(county):
    base = ["ingest", "--raw", str(county / "raw"), "--sources", str(county / "sources")]
    wh = ["--warehouse", str(county / "w.duckdb")]
    res = invoke(*base, *wh, "--workers", "1", "--memory-limit", "512MB")
    assert res.exit_code == 0, res.output
    assert "payment: finance/q1.csv: read 4 = loaded 4" in res.output
    bad = invoke(*base, *wh, "--memory-limit", "lots")
    assert bad.exit_code == 2
    assert "'lots' is not a size; write it like 2GB or 1500MB." in bad.output
    assert invoke(*base, *wh, "--workers", "0").exit_code == 2


def test_log_level_debug_shows_how_long_each_ingest_statement_took(county, caplog):
    import logging

    args = ["--log-level", "debug", "ingest", "--raw", str(county / "raw")]
    try:
        res = invoke(
            *args, "--sources", str(county / "sources"), "--warehouse", str(county / "w.db")
        )
    finally:
        logging.getLogger("crossmatch").setLevel(logging.NOTSET)  # as before the command
    assert res.exit_code == 0, res.output
    timed = [r.getMessage() for r in caplog.records if r.name == "crossmatch.ingest.raw_staging"]
    assert any('INSERT INTO "src_payment"' in m and m.strip()[0].isdigit() for m in timed)
