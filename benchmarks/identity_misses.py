"""Where a resolved county loses identity recall on damaged records (issue 17, identity).

For each true person whose records the resolution split over several predicted persons, every
*stray* group (its records outside the predicted person holding most of them) is listed with
the damaged pairs it misses, its source/role/method, the name, whether the truth person is
registered and how many registered namesakes the name has; groups are summed by source, role
and method, then the biggest strays are printed record by record.

    uv run python benchmarks/eval_layouts.py --layouts default --seeds 11 --persons 8000 \
        --keep /tmp/ev
    uv run python benchmarks/identity_misses.py /tmp/ev/default-11 --top 30
"""

from __future__ import annotations

import argparse
from pathlib import Path

import duckdb
import pandas as pd

from crossmatch.identity.evaluate import COSMETIC_NOISE, join_truth


def strays(county: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per stray group: missed damaged pairs and what it is; per record of the join)."""
    con = duckdb.connect(str(county / "crossmatch.duckdb"), read_only=True)
    truth = pd.read_csv(county / "truth" / "records.csv", dtype=str, keep_default_na=False)
    df = join_truth(con, truth)
    noise = pd.read_csv(county / "truth" / "noise.csv", dtype=str, keep_default_na=False)
    noise = noise[~noise["noise"].isin(COSMETIC_NOISE)].rename(columns={"source_file": "file"})
    noise["row"] = noise["row"].astype(int)
    nz = noise.groupby(["file", "row", "role"])["noise"].agg(",".join).reset_index()
    df = df.merge(nz, on=["file", "row", "role"], how="left")
    df["dmg"] = df["noise"].notna()
    link = con.execute(
        """SELECT l.file, l.row, l.role, l.method, l.probability, l.node_id, m.name,
            m.village_code, m.account, m.id_raw
        FROM identity_link l LEFT JOIN person_mention m USING (source, file, row, role)"""
    ).df()
    df = df.merge(link, on=["file", "row", "role"], how="left")
    persons = pd.read_csv(county / "truth" / "persons.csv", dtype=str, keep_default_na=False)
    reg = persons[persons["in_registry"] == "1"]
    namesakes = reg.groupby("name").size()
    df["true_name"] = df["true"].map(persons.set_index("person_id")["name"])
    df["namesakes"] = df["true_name"].map(namesakes).fillna(0).astype(int)
    df["registered"] = df["true"].isin(set(reg["person_id"]))
    size = df.groupby(["true", "pred"]).agg(n=("dmg", "size"), k=("dmg", "sum")).reset_index()
    tot = size.groupby("true")[["n", "k"]].sum()
    size = size.join(tot, on="true", rsuffix="_t")
    home = size.sort_values(["n", "pred"], ascending=[False, True]).drop_duplicates("true")
    size["home"] = size.set_index(["true", "pred"]).index.isin(
        home.set_index(["true", "pred"]).index
    )
    s = size[~size["home"]].copy()
    # pairs between this group and the rest of its person with at least one damaged record
    rest_n, rest_k = s["n_t"] - s["n"], s["k_t"] - s["k"]
    s["missed_dmg"] = s["n"] * rest_n - (s["n"] - s["k"]) * (rest_n - rest_k)
    first = df.sort_values(["file", "row"]).drop_duplicates(["true", "pred"])
    first = first.assign(src=first["file"].str.split("/").str[0])
    cols = ["true", "pred", "src", "role", "method", "true_name", "namesakes", "registered"]
    s = s.merge(first[cols], on=["true", "pred"], how="left")
    # a predicted person shared with other true persons (a wrong merge) or a stray of its own
    owners = df.groupby("pred")["true"].nunique()
    s["pred_true_persons"] = s["pred"].map(owners)
    return s.sort_values("missed_dmg", ascending=False), df


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("county", type=Path, help="a county folder kept by eval_layouts --keep")
    ap.add_argument("--top", type=int, default=25)
    a = ap.parse_args()
    s, df = strays(a.county)
    total = int(s["missed_dmg"].sum())
    print(f"stray groups {len(s)}, missed damaged pairs (group sum) {total}")
    for by in (["src"], ["src", "role"], ["method"], ["registered"], ["pred_true_persons"]):
        g = s.groupby(by)["missed_dmg"].agg(["sum", "size"]).sort_values("sum", ascending=False)
        print(f"\n-- by {'+'.join(by)}")
        print(g.head(15).to_string())
    nb = pd.cut(s["namesakes"], [-1, 0, 1, 2, 5, 20, 1000])
    print("\n-- by registered namesakes of the true name")
    print(s.groupby(nb, observed=True)["missed_dmg"].agg(["sum", "size"]).to_string())
    pd.set_option("display.width", 250)
    pd.set_option("display.max_columns", 30)
    pd.set_option("display.max_colwidth", 40)
    cols = ["file", "row", "role", "name", "village_code", "account", "id_raw", "method",
            "probability", "pred", "noise"]  # fmt: skip
    for r in s.head(a.top).itertuples(index=False):
        print(
            f"\n== {r.true} {r.true_name} (namesakes {r.namesakes}, registered {r.registered}) "
            f"stray pred {r.pred} n={r.n} missed_dmg={r.missed_dmg} pred holds "
            f"{r.pred_true_persons} true persons"
        )
        rec = df[(df["true"] == r.true)]
        stray = rec[rec["pred"] == r.pred]
        others = rec[rec["pred"] != r.pred].drop_duplicates(["file", "role"])
        print(pd.concat([stray, others])[cols].head(14).to_string(index=False))


if __name__ == "__main__":
    main()
