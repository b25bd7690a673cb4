"""benchmarks/bench_night.py's growth curve and its memory sampler (issue 16): the table reads
the per-size results it wrote, and the sampler names the stage and the function where the
process reached its peak."""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_night", REPO / "benchmarks/bench_night.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _hog_memory(mb: int) -> int:
    block = bytearray(mb << 20)  # resident: bytearray zero-fills the pages
    for i in range(0, len(block), 4096):
        block[i] = 1
    time.sleep(0.4)  # several samples at the peak
    return len(block)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_the_sampler_names_the_stage_and_function_of_the_peak(bench):
    with bench._RssSampler(every=0.02, keep="test_bench_night") as rss:
        rss.say("stage ingest")
        time.sleep(0.1)
        rss.say("stage resolve")
        _hog_memory(300)
        rss.say("stage detect")
        time.sleep(0.1)
    assert rss.stage_peak["resolve"] > rss.stage_peak["ingest"] + 250
    assert rss.stage_peak["resolve"] > rss.stage_peak["detect"] + 250
    assert rss.where[0].startswith("stage resolve, ")
    assert any("_hog_memory" in line for line in rss.where[1:])


def _night(total: float, peak_gb: float, **seconds: float) -> dict:
    return {"total": total, "peak_mb": peak_gb * 1024, "seconds": seconds}


def test_the_growth_table_has_one_row_per_size_in_order_with_its_ratios(bench):
    def result(persons: int, full: float, store: float, changed: bool = True) -> dict:
        nights = {
            "full": _night(full, 2.0, ingest=full / 4, resolve=full / 2) | {"peak_where": []},
            "unchanged": _night(3.0, 0.3),
            "changed": _night(full / 2, 1.5),
        }
        if not changed:  # a run stopped before its changed night
            del nights["changed"]
        return {
            "persons": persons,
            "nights": nights,
            "duckdb_store": {"seconds": store},
            "duckdb_store_decoded": {"seconds": store * 2},
        }

    table = bench.growth_table(
        [result(3_000_000, 200.0, 20.0, changed=False), result(300_000, 80.0, 4.0)]
    )
    rows = [line.split() for line in table.splitlines()[2:]]
    assert [r[0] for r in rows] == ["300000", "3000000"]
    small, big = rows
    assert big[1] == "200.0" and big[3] == "50.0"  # full night, its ingest
    assert small[11] == "0.50" and big[11] == "-"  # changed / full; no changed night
    assert big[-3:] == ["2.50", "40.0", "1.25"]  # ingest / store, decoded store, ingest / that
