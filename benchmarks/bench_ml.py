"""How well and how fast the ML ranker works (issue 14).

    uv run python benchmarks/bench_ml.py quality --seeds 7 11 23 [--persons 8000]
    uv run python benchmarks/bench_ml.py supervised --seed 7
    uv run python benchmarks/bench_ml.py scale --persons 3000000

``quality``     per seed: generate the county (``--work``/seed<S>, once), ingest, resolve, detect,
                score with a freshly fitted model, then per entity kind with planted anomalies
                (truth/anomalies.csv): average precision (AP) and precision at k (k = planted) of
                each detector, against the base rate and against ranking by amount alone;
                pooled over kinds (each kind's percentile rank): AP and P@50.
``supervised``  the seed's clues with verdicts simulated from truth/planted.csv (a clue is
                confirmed when its rule planted that subject as a case) and 10% of them flipped,
                verdicts on a random half; the other half ranked by the calibrated classifier,
                by severity then amount (the review order), and by the subject's unsupervised
                score: AP and P@k against the true labels.
``scale``       the feature inputs of a county of ``--persons`` synthesised directly in DuckDB
                (row counts and key cardinalities of the generator's county, scaled; building a
                3M-person warehouse through generate/ingest/resolve takes far longer than
                scoring it and measures those stages, not this one), then ``score_warehouse``:
                wall time and peak memory (RSS of this process, DuckDB included).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
from sklearn.metrics import average_precision_score

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("recipient", "household", "village", "handler")


def sh(*args: str) -> None:
    r = subprocess.run([sys.executable, "-m", "crossmatch.cli", *args], cwd=ROOT,
                       capture_output=True, text=True)  # fmt: skip
    if r.returncode not in (0, 4):
        raise SystemExit(f"crossmatch {' '.join(args)} failed ({r.returncode}):\n{r.stderr}")


def build(work: Path, seed: int, persons: int) -> Path:
    """The seed's county and warehouse (built once; reused when present)."""
    d = work / f"seed{seed}"
    wh = d / "w.duckdb"
    if wh.exists():
        return wh
    sh("sample", "--persons", str(persons), "--seed", str(seed), "--out", str(d))
    sh("ingest", "--raw", str(d / "raw"), "--warehouse", str(wh))
    sh("resolve", "--warehouse", str(wh))
    sh("detect", "--warehouse", str(wh))
    return wh


def p_at(y: np.ndarray, s: np.ndarray, k: int) -> float:
    order = np.argsort(-s, kind="mergesort")[:k]
    return float(y[order].mean()) if k else 0.0


AMOUNT_SQL = {
    "recipient": "SELECT payee_pid AS entity_id, sum(amount) AS amount FROM r_payment "
    "WHERE status = 'success' GROUP BY 1",
    "household": "SELECT a.applicant_pid AS entity_id, sum(p.amount) AS amount FROM "
    "(SELECT DISTINCT applicant_pid, member_pid FROM r_assistance) a JOIN r_payment p "
    "ON p.payee_pid = a.member_pid AND p.status = 'success' GROUP BY 1",
    "village": "SELECT village_code AS entity_id, sum(amount) AS amount FROM r_payment "
    "WHERE status = 'success' GROUP BY 1",
    "handler": "SELECT h AS entity_id, sum(p.amount) AS amount FROM (SELECT DISTINCT "
    "unnest([handler_pid, approver_pid]) AS h, applicant_pid FROM r_assistance) a "
    "JOIN r_payment p ON p.payee_pid = a.applicant_pid AND p.status = 'success' GROUP BY 1",
}


def quality(a: argparse.Namespace) -> None:
    from crossmatch.ml.detectors import percentile_rank
    from crossmatch.ml.score import score_warehouse

    rows = []
    for seed in a.seeds:
        t = time.perf_counter()
        wh = build(a.work, seed, a.persons)
        build_s = time.perf_counter() - t
        res = score_warehouse(wh, retrain=True)
        truth = pl.read_csv(wh.parent / "truth" / "anomalies.csv", infer_schema_length=0)
        con = duckdb.connect(str(wh), read_only=True)
        scores = pl.from_arrow(con.execute(
            "SELECT entity, entity_id, robust_z, iforest, ensemble FROM ml_score WHERE run_id = ?",
            [res.run_id]).to_arrow_table())  # fmt: skip
        pooled = []
        for kind in KINDS:
            s = scores.filter(pl.col("entity") == kind)
            amt = pl.from_arrow(con.execute(AMOUNT_SQL[kind]).to_arrow_table())
            s = s.join(amt.with_columns(pl.col("amount").cast(pl.Float64)), on="entity_id",
                       how="left").with_columns(pl.col("amount").fill_null(0))  # fmt: skip
            pos = set(truth.filter(pl.col("entity") == kind)["subject"].to_list())
            y = s["entity_id"].is_in(list(pos)).cast(pl.Float64).to_numpy()
            if not y.sum():
                continue
            k = int(y.sum())
            r = {"seed": seed, "kind": kind, "entities": s.height, "planted": k,
                 "found": len(pos & set(s["entity_id"].to_list())),
                 "base": y.mean()}  # fmt: skip
            for det in ("ensemble", "robust_z", "iforest", "amount"):
                sc = s[det].to_numpy()
                r[f"ap_{det}"] = average_precision_score(y, sc)
                r[f"pk_{det}"] = p_at(y, sc, k)
            rows.append(r)
            pooled.append(pl.DataFrame({
                "y": y, "ensemble": s["ensemble"].to_numpy(),
                "amount": percentile_rank(s["amount"].to_numpy()),
            }))  # fmt: skip
        con.close()
        p = pl.concat(pooled)
        y = p["y"].to_numpy()
        print(f"seed {seed}: build {build_s:.0f} s, score {res.seconds:.1f} s; pooled over "
              f"{len(pooled)} kinds ({p.height} entities, {int(y.sum())} planted, base "
              f"{y.mean():.4f}): ensemble AP {average_precision_score(y, p['ensemble']):.3f} "
              f"P@50 {p_at(y, p['ensemble'].to_numpy(), 50):.2f}; amount AP "
              f"{average_precision_score(y, p['amount']):.3f} "
              f"P@50 {p_at(y, p['amount'].to_numpy(), 50):.2f}")  # fmt: skip
    df = pl.DataFrame(rows)
    with pl.Config(tbl_rows=50, tbl_cols=20, tbl_width_chars=220, float_precision=3):
        print(df.select("seed", "kind", "entities", "planted", "found", "base", "ap_ensemble",
                        "ap_robust_z", "ap_iforest", "ap_amount", "pk_ensemble",
                        "pk_amount"))  # fmt: skip
        print("mean over seeds and kinds:")
        print(df.select("base", "ap_ensemble", "ap_robust_z", "ap_iforest", "ap_amount",
                        "pk_ensemble", "pk_robust_z", "pk_iforest",
                        "pk_amount").mean())  # fmt: skip


def supervised(a: argparse.Namespace) -> None:
    from crossmatch.ml import supervised as S
    from crossmatch.ml.score import score_warehouse
    from crossmatch.review.clues import sync_warehouse

    wh = build(a.work, a.seed, a.persons)
    score_warehouse(wh)
    store = wh.parent / f"bench-{os.getpid()}.review.duckdb"
    sync_warehouse(wh, store, rules_dir=ROOT / "rules")
    clues = S.clue_frame(wh, store)
    store.unlink()
    planted = pl.read_csv(wh.parent / "truth" / "planted.csv", infer_schema_length=0)
    cases = set(zip(*planted.filter(pl.col("kind") == "case").select("rule_id", "subject")
                    .to_dict(as_series=False).values(), strict=True))  # fmt: skip
    y = np.array([(r, s) in cases for r, s in zip(clues["rule_id"], clues["subject"],
                                                    strict=True)], dtype=float)  # fmt: skip
    rng = np.random.default_rng(a.seed)
    noisy = np.where(rng.random(len(y)) < a.noise, 1 - y, y)
    half = rng.permutation(len(y))
    tr, te = half[: len(y) // 2], half[len(y) // 2 :]
    rules = sorted(clues["rule_id"].unique().to_list())
    x = S.design(clues, rules)
    t = time.perf_counter()
    oof = S.out_of_fold(x[tr], noisy[tr], seed=a.seed)
    clf = S.fit(x[tr], noisy[tr], seed=a.seed)
    p = clf.predict_proba(x[te])[:, 1]
    secs = time.perf_counter() - t
    sev = clues["severity"].replace_strict(S.SEVERITY, default=0.0, return_dtype=pl.Float64)
    amount = clues["amount"].cast(pl.Float64).fill_null(0).to_numpy()
    severity = sev.to_numpy() * 1e9 + amount  # the review order: severity, then amount
    unsup = clues["ml_ensemble"].cast(pl.Float64).fill_null(0).to_numpy()
    yt = y[te]
    print(f"seed {a.seed}: {len(y)} clues, {int(y.sum())} confirmed by truth (base "
          f"{y.mean():.3f}); verdicts on {len(tr)} with {a.noise:.0%} flipped; trained in "
          f"{secs:.1f} s; out-of-fold AP on the verdicts "
          f"{average_precision_score(noisy[tr], oof):.3f}")  # fmt: skip
    print(f"held-out half ({len(te)} clues, base {yt.mean():.3f}):")
    for name, s in (("supervised", p), ("severity+amount", severity[te]),
                    ("unsupervised", unsup[te])):  # fmt: skip
        ks = "  ".join(f"P@{k} {p_at(yt, s, k):.3f}" for k in (20, 50, 100, 200))
        print(f"  {name:<16} AP {average_precision_score(yt, s):.3f}  {ks}")
    prec = S.rule_precision(clues.with_columns(pl.Series("label", np.where(
        np.isin(np.arange(len(y)), tr), noisy, np.nan)).fill_nan(None)))  # fmt: skip
    print("rule precision from the simulated verdicts:")
    for r in prec.iter_rows(named=True):
        print(f"  {r['rule_id']:<28} {r['confirmed']:>4}/{r['verdicts']:<4} {r['precision']:.3f}")


def scale(a: argparse.Namespace) -> None:
    from crossmatch.ml.score import score_warehouse

    n = a.persons
    wh = a.work / f"scale{n}.duckdb"
    if not wh.exists():
        t = time.perf_counter()
        con = duckdb.connect(str(wh))
        con.execute("SET memory_limit = '2GB'")
        villages = max(8, n // 1200)
        # ratios from the 8,000-person county: 2.65 payments, 0.28 roster rows, 6.7 relatives,
        # 0.09 cadres and 0.56 hits per person
        con.execute(f"""
        CREATE TABLE person AS SELECT 'P' || i AS person_id, 'x' AS name,
            'H' || (i // 3) AS household_no,
            '341122' || lpad(CAST(1 + (i % {villages}) % 60 AS VARCHAR), 3, '0')
                || lpad(CAST(1 + (i % {villages}) // 60 AS VARCHAR), 3, '0') AS village_code,
            TRUE AS in_registry,
            DATE '1935-01-01' + CAST(hash(i) % 30000 AS INTEGER) AS birth_date
        FROM range({n}) t(i);
        CREATE TABLE r_payment AS SELECT 'P' || p AS payee_pid,
            ['城乡低保金', '养老金', '高龄津贴', '残疾人两项补贴', '耕地地力保护补贴'][1 + p % 5]
                AS item,
            CAST(100 + (p % 7) * 50 AS DECIMAL(18,2)) AS amount,
            '2025-' || lpad(CAST(1 + m AS VARCHAR), 2, '0') AS period, 'A' || p AS account,
            v.village_code, 'success' AS status
        FROM (SELECT (hash(i) % {n})::BIGINT AS p, i % 12 AS m FROM range({int(n * 2.65)}) t(i))
        JOIN person v ON v.person_id = 'P' || p;
        CREATE TABLE r_assistance AS SELECT 'C' || (i // 3) AS case_no,
            'P' || ((i // 3) * 3) AS applicant_pid,
            '王李张刘陈杨'[1 + i % 6] || '某' AS applicant_name,
            'P' || i AS member_pid, 3 AS household_size, p.village_code,
            'P' || (100 + (i // 3) % 1000) AS handler_pid,
            'P' || (5000 + (i // 3) % 400) AS approver_pid,
            DATE '2014-01-01' + CAST(hash(i) % 4000 AS INTEGER) AS start_date
        FROM range({n}) t(i) JOIN person p ON p.person_id = 'P' || i
        WHERE i % 100 < 28;
        CREATE TABLE kin_relative AS SELECT 'P' || (hash(i) % {n}) AS person_pid,
            'P' || (hash(i + 7) % {n}) AS relative_pid, i % 4 <> 0 AS is_close
        FROM range({int(n * 6.7)}) t(i);
        CREATE TABLE r_cadre AS SELECT person_id AS cadre_pid, village_code FROM person
        WHERE hash(person_id) % 11 = 0;
        CREATE TABLE hit AS SELECT 'run1' AS run_id, 'r' || (i % 16) AS rule_id,
            'P' || (hash(i) % {n}) AS subject, NULL::VARCHAR AS village_code
        FROM range({int(n * 0.56)}) t(i);
        CREATE TABLE rule_run AS SELECT 'run1' AS run_id, 'r' AS rule_id, 'ok' AS status,
            now()::TIMESTAMP AS started_at;
        """)  # fmt: skip
        counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in
                  ("person", "r_payment", "r_assistance", "kin_relative", "r_cadre",
                   "hit")}  # fmt: skip
        con.close()
        print(f"synthesised in {time.perf_counter() - t:.0f} s: {counts}")
    t = time.perf_counter()
    res = score_warehouse(wh, retrain=True, memory_limit=a.memory_limit)
    secs = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(res.render())
    print(f"scale {n:,} persons: score_warehouse {secs:.1f} s, peak RSS {peak:.2f} GB "
          f"(targets: < 120 s, < 4 GB)")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/ml/bench"))
    sub = ap.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("quality")
    q.add_argument("--seeds", type=int, nargs="+", default=[7, 11, 23])
    q.add_argument("--persons", type=int, default=8000)
    s = sub.add_parser("supervised")
    s.add_argument("--seed", type=int, default=7)
    s.add_argument("--persons", type=int, default=8000)
    s.add_argument("--noise", type=float, default=0.10)
    c = sub.add_parser("scale")
    c.add_argument("--persons", type=int, default=3_000_000)
    c.add_argument("--memory-limit", default="2GB")
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    {"quality": quality, "supervised": supervised, "scale": scale}[a.cmd](a)


if __name__ == "__main__":
    main()
