"""crossmatch score / anomalies / train from the command line."""

from __future__ import annotations

from click.testing import CliRunner

from crossmatch.cli import main


def test_score_then_anomalies_masked(county_warehouse):
    wh, _ = county_warehouse
    out = CliRunner().invoke(main, ["score", "--warehouse", str(wh)])
    assert out.exit_code == 4, out.output  # the official kind is skipped: no cadres here
    assert "official   skipped" in out.output and "recipient  ok" in out.output
    out = CliRunner().invoke(main, ["anomalies", "--warehouse", str(wh), "--entity", "handler",
                                    "--top", "1"])  # fmt: skip
    assert out.exit_code == 0, out.output
    assert out.output.startswith("handler    #1") and "模型评分" in out.output
    assert "审批集中在6月底、12月底前几天" in out.output


def test_train_refuses_without_verdicts(county_warehouse, tmp_path):
    wh, _ = county_warehouse
    from crossmatch.review.store import open_store, store_path

    open_store(store_path(wh)).close()
    out = CliRunner().invoke(main, ["train", "--warehouse", str(wh)])
    assert out.exit_code == 4
    assert "0 labelled clues" in out.output and "needs at least 40" in out.output


def test_anomalies_before_score_names_the_fix(county_warehouse):
    wh, _ = county_warehouse
    out = CliRunner().invoke(main, ["anomalies", "--warehouse", str(wh)])
    assert out.exit_code == 5 and "run `crossmatch score`" in out.output
