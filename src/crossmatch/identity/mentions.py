"""Stage 1 of identity resolution: ``person_mention``, one row per (source, file, row, role)
from the canonical ``src_*`` tables, with its name, ID and context.
"""

from __future__ import annotations

import hashlib

import duckdb
import pandas as pd

from crossmatch.errors import WarehouseError
from crossmatch.identity import id_index, staff
from crossmatch.identity.roles import RoleRef
from crossmatch.identity.summary import ResolveSummary
from crossmatch.warehouse import fetch_one, transaction

# context keys a role may give (RoleRef.context): village_code, village (a village *name*:
# mapped to its code through the name / code pairs other records give), account, township
# (a township name: staff of that township), unit (employer), date (the record's date or
# month, e.g. a payment's period: a candidate who had died before it is unlikely)
_CTX = ("village_code", "village", "account", "township", "unit", "date")


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    rows = con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE table_name = ?", [table]
    ).fetchall()
    return {r[0] for r in rows}


def _all_columns(con: duckdb.DuckDBPyConnection) -> dict[str, set[str]]:
    """Every table's (and view's) columns in one query: what :func:`_columns` gives per table,
    for a caller that asks about many tables while none is created or altered (a query per
    table costs about a millisecond, and a warehouse holds a hundred tables)."""
    out: dict[str, set[str]] = {}
    for table, column in con.execute(
        "SELECT table_name, column_name FROM duckdb_columns()"
    ).fetchall():
        out.setdefault(table, set()).add(column)
    return out


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {
        r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
    }


def _store(con: duckdb.DuckDBPyConnection, name: str, df: pd.DataFrame, temp: bool = False) -> None:
    """Materialise a DataFrame as a (temporary) table."""
    # DuckDB refuses register() while an earlier execute() has unread rows (a fetchone());
    # a new statement closes that result
    con.execute("SELECT 1").fetchall()
    con.register("_df_in", df)
    try:
        kind = "TEMP TABLE" if temp else "TABLE"
        con.execute(f"CREATE OR REPLACE {kind} {name} AS SELECT * FROM _df_in")
    finally:
        con.unregister("_df_in")


def _sql_text(s: str) -> str:
    """``s`` as a SQL string literal (quotes doubled)."""
    return "'" + s.replace("'", "''") + "'"


#: Bumped whenever what :func:`build_mentions` writes for the same rows changes (the mentions
#: kept from an earlier run are then rebuilt).
MENTION_VERSION = "1"


def build_mentions(
    con: duckdb.DuckDBPyConnection,
    roles: list[RoleRef],
    summary: ResolveSummary,
    *,
    full: bool = True,
) -> None:
    """Create ``person_mention`` from every role whose table exists.

    ``full=False``: where the warehouse holds the mentions of an earlier run built the same way
    (same roles, mappings, township names: :func:`_mention_signature`), keep the mentions of
    every file version still loaded and build only those of the file versions new since (and
    drop those of versions gone), provided the village name -> code maps are unchanged (else
    every mention is built again: a new pair may give a kept mention another code).
    ``summary.mentions_built`` says how many mention rows this run wrote."""
    parts: dict[str, list[str]] = {}  # table -> its roles' SELECTs
    colmap = _all_columns(con)  # nothing below creates or alters a table before the signature
    for r in roles:
        cols = colmap.get(r.table, set())
        if not cols:
            summary.skipped.append(f"{r.table} ({r.role}): table not in the warehouse")
            continue
        need = [c for c in (r.name, r.id) if c]
        missing = [c for c in need if c not in cols]
        if missing:
            summary.skipped.append(
                f"{r.table} ({r.role}): missing column(s) {', '.join(missing)}; "
                "check the persons: block of the source spec"
            )
            continue

        def col(c: str | None, typ: str = "VARCHAR", cols: set[str] = cols) -> str:
            return f"CAST({c} AS {typ})" if c and c in cols else f"CAST(NULL AS {typ})"

        idc = r.id
        context = dict(r.context)
        if r.id is None and "township" not in context and "township" in cols:
            # name-only staff roles (handler/approver): their township is the row's township
            context["township"] = "township"
        ctx = {k: col(context.get(k)) for k in _CTX}
        # the row's township name (contract field `township`), to tell two villages of one
        # name apart; only read where the role names its village by name
        town = (
            "CAST(NULLIF(trim(CAST(township AS VARCHAR)), '') AS VARCHAR)"
            if context.get("village") and "township" in cols
            else "CAST(NULL AS VARCHAR)"
        )
        fh = "CAST(_file_hash AS VARCHAR)" if "_file_hash" in cols else "CAST(NULL AS VARCHAR)"
        parts.setdefault(r.table, []).append(
            f"""SELECT {_sql_text(r.source)} AS source, _file AS file, _row AS row,
                {_sql_text(r.role)} AS role,
                {fh} AS file_hash,
                {col(r.name)} AS name, {col(f"{r.name}_raw" if r.name else None)} AS name_raw,
                {col(idc)} AS id, {col(f"{idc}_raw" if idc else None)} AS id_raw,
                {col(f"{idc}_status" if idc else None)} AS id_status,
                {ctx["village_code"]} AS village_code, {ctx["village"]} AS village,
                {ctx["account"]} AS account,
                {ctx["township"]} AS township, {ctx["unit"]} AS unit, {ctx["date"]} AS event_raw,
                {town} AS village_town
            FROM {r.table}"""
        )
    if not parts:
        raise WarehouseError(
            "no person-bearing src_* table found in the warehouse; run `crossmatch ingest` first"
        )
    # the tables whose rows name a village and its code: the name -> code pairs
    pair_tables = {}
    for t in sorted(_tables(con)):
        cols = colmap.get(t, set())
        if t.startswith("src_") and {"village", "village_code"} <= cols:
            pair_tables[t] = cols
    towns = staff.township_names(con)
    sig = _mention_signature(con, roles, sorted({*parts, *pair_tables}), towns, colmap)
    versioned = all("_file_hash" in colmap.get(t, set()) for t in {*parts, *pair_tables})
    if versioned:
        # file versions: (table, file, content hash) and the row count (a version whose rows
        # changed in place, as tests and hand edits do, counts as gone and new)
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _mv_now AS "
            + " UNION ALL ".join(
                f"SELECT {_sql_text(t)} AS tbl, CAST(_file AS VARCHAR) AS file, "
                f"CAST(_file_hash AS VARCHAR) AS file_hash, count(*) AS n FROM {t} GROUP BY ALL"
                for t in sorted({*parts, *pair_tables})
            )
        )
    else:  # (a table of an earlier run on this connection must not pass for this run's)
        con.execute("DROP TABLE IF EXISTS _mv_now")
    if (
        not full
        and versioned
        and _mentions_reusable(con, sig)
        and _build_incremental(con, parts, pair_tables, towns, sig, summary)
    ):
        return
    _build_all(con, parts, pair_tables, towns, sig, versioned, summary)


def state_token(table: str = "identity_mention_file") -> str:
    """SQL expression: a digest of the file versions whose mentions ``person_mention`` holds
    (``identity_mention_file``), with the mention signature: what tables kept beside the
    mentions record they were computed from."""
    return (
        f"(SELECT count(*) || ':' || coalesce(bit_xor(hash(t)), 0) || ':' "
        f"|| coalesce(sum((hash(t) >> 11)::HUGEINT), 0) FROM {table} t) || ':' "
        "|| (SELECT coalesce(min(signature), '') FROM identity_mention_state)"
    )


def _mention_signature(
    con: duckdb.DuckDBPyConnection,
    roles: list[RoleRef],
    tables: list[str],
    towns: list[str],
    colmap: dict[str, set[str]] | None = None,
) -> str:
    """What the mentions of one file version are computed from besides its rows: this code's
    version, the roles, each source's mapping digest, the tables' columns and the township
    names (:func:`~crossmatch.identity.staff.assign_townships`). ``colmap``: the tables'
    columns (:func:`_all_columns`) where the caller has them."""
    colmap = _all_columns(con) if colmap is None else colmap
    digests: list[tuple] = []
    if "ingest_file" in _tables(con) and "spec_digest" in _columns(con, "ingest_file"):
        digests = con.execute(
            "SELECT DISTINCT source, coalesce(spec_digest, '') FROM ingest_file "
            "WHERE status = 'ok' ORDER BY ALL"
        ).fetchall()
    cols = [(t, sorted(colmap.get(t, set()))) for t in tables]
    text = repr((MENTION_VERSION, _VILLAGE_CLEAN, sorted(map(repr, roles)), digests, cols, towns))
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


_STATE_TABLES = (
    "identity_mention_state",
    "identity_mention_file",
    "identity_village_pair",
    *id_index.TABLES,
)


def _mentions_reusable(con: duckdb.DuckDBPyConnection, sig: str) -> bool:
    """Whether the stored mentions were built, the same way, by :func:`build_mentions`."""
    tables = _tables(con)
    if not {"person_mention", *_STATE_TABLES} <= tables:
        return False
    row = con.execute("SELECT signature FROM identity_mention_state").fetchall()
    return row == [(sig,)]


def _mention_sql(parts: dict[str, list[str]], only_new: bool) -> str:
    """Every role's mentions (only those of new file versions: ``only_new``), with the
    cleaned village, the ID's birth date and sex, and the record's month."""

    def where(t: str) -> str:
        if not only_new:
            return ""
        return (
            f" WHERE EXISTS (SELECT 1 FROM _mv_new v WHERE v.tbl = {_sql_text(t)} "
            f"AND v.file = CAST({t}._file AS VARCHAR) "
            f"AND v.file_hash IS NOT DISTINCT FROM CAST({t}._file_hash AS VARCHAR))"
        )

    selects = [q + where(t) for t, qs in parts.items() for q in qs]
    return (
        "SELECT * REPLACE (" + _VILLAGE_CLEAN + " AS village), "
        "CASE WHEN id IS NOT NULL THEN strptime(substr(id, 7, 8), '%Y%m%d')::DATE END "
        "AS birth_date, "
        "CASE WHEN id IS NOT NULL THEN "
        "CASE WHEN CAST(substr(id, 17, 1) AS INTEGER) % 2 = 1 THEN '男' ELSE '女' END END AS sex, "
        "date_trunc('month', coalesce(try_cast(event_raw AS DATE), "
        "try_strptime(event_raw, '%Y-%m')::DATE, try_strptime(event_raw, '%Y%m')::DATE))::DATE "
        "AS event_month "
        "FROM (" + " UNION ALL ".join(selects) + ") "
        "WHERE name IS NOT NULL OR id IS NOT NULL OR id_raw IS NOT NULL"
    )


def _pair_sql(pair_tables: dict[str, set[str]], only_new: bool) -> str:
    """The village name / code pairs per file version: every mention that has both (``_pm``),
    and every canonical table with both a ``village`` and a ``village_code`` field (a roster or
    payment file naming and coding its villages); the township name where the row says it (a
    name two villages share)."""
    pairs = [
        "SELECT 'src_' || source AS tbl, file, file_hash, village_town AS town, village, "
        "village_code FROM _pm"
    ]
    for t, cols in pair_tables.items():
        town = (
            "NULLIF(trim(CAST(township AS VARCHAR)), '')" if "township" in cols else "NULL::VARCHAR"
        )
        fh = "CAST(_file_hash AS VARCHAR)" if "_file_hash" in cols else "NULL::VARCHAR"
        new = (
            f" WHERE EXISTS (SELECT 1 FROM _mv_new v WHERE v.tbl = {_sql_text(t)} "
            f"AND v.file = CAST({t}._file AS VARCHAR) AND v.file_hash IS NOT DISTINCT FROM {fh})"
            if only_new
            else ""
        )
        pairs.append(
            f"SELECT {_sql_text(t)} AS tbl, CAST(_file AS VARCHAR) AS file, {fh} AS file_hash, "
            f"{town} AS town, " + _VILLAGE_CLEAN + " AS village, "
            f"CAST(village_code AS VARCHAR) AS village_code FROM {t}{new}"
        )
    return (
        f"SELECT DISTINCT * FROM ({' UNION ALL '.join(pairs)}) x "
        "WHERE village IS NOT NULL AND village_code IS NOT NULL"
    )


def _map_sql(pairs: str) -> tuple[str, str]:
    """The village name -> code maps from the pairs in relation ``pairs``: a name with one code
    in the county (two villages of one name give no code), and per (township name, name)."""
    return (
        f"""SELECT village, min(village_code) AS code FROM {pairs}
        GROUP BY village HAVING count(DISTINCT village_code) = 1""",
        f"""SELECT town, village, min(village_code) AS code FROM {pairs}
        WHERE town IS NOT NULL GROUP BY town, village HAVING count(DISTINCT village_code) = 1""",
    )


_MAPPED = """SELECT m.* EXCLUDE (event_raw, village_town)
            REPLACE (coalesce(m.village_code, v.code, vt.code) AS village_code)
        FROM _pm m LEFT JOIN identity_village_map v USING (village)
        LEFT JOIN identity_village_town_map vt ON vt.town = m.village_town
            AND vt.village = m.village"""


def _build_all(
    con: duckdb.DuckDBPyConnection,
    parts: dict[str, list[str]],
    pair_tables: dict[str, set[str]],
    towns: list[str],
    sig: str,
    versioned: bool,
    summary: ResolveSummary,
) -> None:
    """Every mention, and the state a later run's :func:`_build_incremental` starts from."""
    # (no state until every table is written: a run killed half-way leaves the next one
    # building every mention again)
    con.execute("DROP TABLE IF EXISTS identity_mention_state")
    con.execute("DROP TABLE IF EXISTS _mention_prev")
    con.execute("CREATE OR REPLACE TEMP TABLE _pm AS " + _mention_sql(parts, only_new=False))
    # a village written by name takes the code that name has wherever a record gives both
    con.execute("CREATE OR REPLACE TABLE identity_village_pair AS " + _pair_sql(pair_tables, False))
    vmap, tmap = _map_sql("identity_village_pair")
    con.execute(f"CREATE OR REPLACE TABLE identity_village_map AS {vmap}")
    con.execute(f"CREATE OR REPLACE TABLE identity_village_town_map AS {tmap}")
    con.execute(f"CREATE OR REPLACE TABLE person_mention AS {_MAPPED}")
    con.execute("DROP TABLE _pm")
    con.execute("DROP TABLE IF EXISTS _pm_gone_ids")
    for t in _CHANGE_TEMPS:
        con.execute(f"DROP TABLE IF EXISTS {t}")
    staff.assign_townships(con, names=towns)
    id_index.build(con)
    summary.mentions_built = fetch_one(con, "SELECT count(*) FROM person_mention")[0]
    if versioned:
        con.execute(
            "CREATE OR REPLACE TABLE identity_row_digest AS " + _row_digest_sql(con, parts, False)
        )
        con.execute("CREATE OR REPLACE TABLE identity_mention_file AS SELECT * FROM _mv_now")
        con.execute("CREATE OR REPLACE TABLE identity_mention_state (signature VARCHAR)")
        con.execute("INSERT INTO identity_mention_state VALUES (?)", [sig])
    else:  # no file versions to keep mentions by: the next run builds them all again
        con.execute("DROP TABLE IF EXISTS identity_mention_state")
        con.execute("DROP TABLE IF EXISTS identity_row_digest")


def _build_incremental(
    con: duckdb.DuckDBPyConnection,
    parts: dict[str, list[str]],
    pair_tables: dict[str, set[str]],
    towns: list[str],
    sig: str,
    summary: ResolveSummary,
) -> bool:
    """Build the mentions of the file versions new since the last run, drop those of versions
    gone, keep the others' rows as they are. False (nothing written) when the village maps
    would change: the caller then builds every mention."""
    # what the stored person index was computed from, if it is up to date (fuzzy_model)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _mention_prev AS SELECT "
        + state_token("identity_mention_file")
        + " AS token"
    )
    con.execute("CREATE OR REPLACE TEMP TABLE _idx_changed (id VARCHAR)")
    con.execute("CREATE OR REPLACE TEMP TABLE _acct_moved (account VARCHAR)")
    # what really changed in the file versions new and gone (:func:`_rows_changed`)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _row_same (source VARCHAR, file VARCHAR, row INTEGER)"
    )
    con.execute("CREATE OR REPLACE TEMP TABLE _row_gone AS SELECT * FROM person_mention LIMIT 0")
    con.execute("CREATE OR REPLACE TEMP TABLE _row_chg_id (id VARCHAR)")
    con.execute("CREATE OR REPLACE TEMP TABLE _row_chg_acct (account VARCHAR)")
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _mv_new AS "
        "SELECT * FROM _mv_now EXCEPT SELECT * FROM identity_mention_file"
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _mv_gone AS "
        "SELECT * FROM identity_mention_file EXCEPT SELECT * FROM _mv_now"
    )
    n_new, n_gone = fetch_one(
        con, "SELECT (SELECT count(*) FROM _mv_new), (SELECT count(*) FROM _mv_gone)"
    )
    summary.mentions_built = 0
    summary.mentions_kept = True
    # the IDs and accounts of the mentions dropped (their persons' rows are published again,
    # their rows of the ID index computed again)
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _pm_gone AS SELECT DISTINCT m.id, m.account
        FROM person_mention m WHERE (m.id IS NOT NULL OR m.account IS NOT NULL)
            AND EXISTS (SELECT 1 FROM _mv_gone g WHERE g.tbl = 'src_' || m.source
            AND g.file = m.file AND g.file_hash IS NOT DISTINCT FROM m.file_hash)"""
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _pm_gone_ids AS "
        "SELECT DISTINCT id FROM _pm_gone WHERE id IS NOT NULL"
    )
    if not n_new and not n_gone:
        return True
    con.execute("CREATE OR REPLACE TEMP TABLE _pm AS " + _mention_sql(parts, only_new=True))
    con.execute("CREATE OR REPLACE TEMP TABLE _pair_new AS " + _pair_sql(pair_tables, True))
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _pair_all AS
        SELECT * FROM identity_village_pair p WHERE NOT EXISTS (SELECT 1 FROM _mv_gone g
            WHERE g.tbl = p.tbl AND g.file = p.file
                AND g.file_hash IS NOT DISTINCT FROM p.file_hash)
        UNION ALL SELECT * FROM _pair_new"""
    )
    vmap, tmap = _map_sql("_pair_all")
    changed = fetch_one(
        con,
        f"""SELECT (SELECT count(*) FROM (({vmap}) EXCEPT (FROM identity_village_map)))
            + (SELECT count(*) FROM ((FROM identity_village_map) EXCEPT ({vmap})))
            + (SELECT count(*) FROM (({tmap}) EXCEPT (FROM identity_village_town_map)))
            + (SELECT count(*) FROM ((FROM identity_village_town_map) EXCEPT ({tmap})))""",
    )[0]
    if changed:
        con.execute("DROP TABLE _pm")
        summary.mentions_kept = False
        return False
    con.execute(f"CREATE OR REPLACE TEMP TABLE _pm_new AS {_MAPPED}")
    con.execute("DROP TABLE _pm")
    staff.assign_townships(con, "_pm_new", names=towns)
    con.execute("CREATE OR REPLACE TEMP TABLE _rd_new AS " + _row_digest_sql(con, parts, True))
    _rows_changed(con)
    # the IDs and accounts whose ID-index, person-index and person rows can change: those of
    # the mentions of rows not kept in place (a row with the same content and number has the
    # same mentions, and the same row of every src_* join, before and after)
    inplace = """NOT EXISTS (SELECT 1 FROM _row_inplace r WHERE r.source = m.source
        AND r.file = m.file AND r.row = m.row)"""
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _pm_gone AS SELECT DISTINCT m.id, m.account
        FROM person_mention m WHERE (m.id IS NOT NULL OR m.account IS NOT NULL)
            AND EXISTS (SELECT 1 FROM _mv_gone g WHERE g.tbl = 'src_' || m.source
            AND g.file = m.file AND g.file_hash IS NOT DISTINCT FROM m.file_hash)
            AND {inplace}"""
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _pm_gone_ids AS "
        "SELECT DISTINCT id FROM _pm_gone WHERE id IS NOT NULL"
    )
    with transaction(con):
        con.execute(
            """DELETE FROM person_mention m WHERE EXISTS (SELECT 1 FROM _mv_gone g
            WHERE g.tbl = 'src_' || m.source AND g.file = m.file
            AND g.file_hash IS NOT DISTINCT FROM m.file_hash)"""
        )
        con.execute("INSERT INTO person_mention BY NAME SELECT * FROM _pm_new")
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _pm_changed AS SELECT id, account FROM _pm_gone "
            f"UNION SELECT id, account FROM _pm_new m WHERE {inplace}"
        )
        id_index.update(con, "_pm_changed")
        con.execute(
            """DELETE FROM identity_village_pair p WHERE EXISTS (SELECT 1 FROM _mv_gone g
            WHERE g.tbl = p.tbl AND g.file = p.file
                AND g.file_hash IS NOT DISTINCT FROM p.file_hash)"""
        )
        con.execute("INSERT INTO identity_village_pair SELECT * FROM _pair_new")
        con.execute(
            """DELETE FROM identity_row_digest d WHERE EXISTS (SELECT 1 FROM _mv_gone g
            WHERE g.tbl = d.tbl AND g.file = d.file
                AND g.file_hash IS NOT DISTINCT FROM d.file_hash)"""
        )
        con.execute("INSERT INTO identity_row_digest SELECT * FROM _rd_new")
        _carry_links(con)
        con.execute("DELETE FROM identity_mention_file")
        con.execute("INSERT INTO identity_mention_file SELECT * FROM _mv_now")
        con.execute("UPDATE identity_mention_state SET signature = ?", [sig])
    summary.mentions_built = fetch_one(con, "SELECT count(*) FROM _pm_new")[0]
    con.execute("DROP TABLE _pm_new")
    con.execute("DROP TABLE _pm_changed")
    con.execute("DROP TABLE _pair_new")
    con.execute("DROP TABLE _pair_all")
    con.execute("DROP TABLE _rd_new")
    con.execute("DROP TABLE _rd_pair")
    con.execute("DROP TABLE _row_inplace")
    return True


#: temp tables :func:`_build_incremental` leaves for the run (identity.incremental._reached)
_CHANGE_TEMPS = ("_row_same", "_row_gone", "_row_chg_id", "_row_chg_acct")

#: columns of a ``src_*`` row that are not its content: where it is, not what it says
#: (``_dup_of`` names another row's number: only whether it is set is content)
_ROW_PLACE = ("_source", "_file", "_file_hash", "_row", "_dup_of")


def _row_digest_sql(
    con: duckdb.DuckDBPyConnection, parts: dict[str, list[str]], only_new: bool
) -> str:
    """(tbl, file, file_hash, row, digest) for every row of the mention-bearing tables (only
    those of the file versions in ``_mv_new``: ``only_new``): ``digest`` is a 64-bit hash of
    the row's content, every column but where the row is (:data:`_ROW_PLACE`), so that the
    same row of two exports of one file has the same digest whatever its row number."""
    selects = []
    for t in sorted(parts):
        cols = sorted(_columns(con, t))
        body = [f'"{c}" := "{c}"' for c in cols if c not in _ROW_PLACE]
        if "_dup_of" in cols:
            body.append("_dup := _dup_of IS NULL")
        where = (
            f" WHERE EXISTS (SELECT 1 FROM _mv_new v WHERE v.tbl = {_sql_text(t)} "
            f"AND v.file = CAST({t}._file AS VARCHAR) "
            f"AND v.file_hash IS NOT DISTINCT FROM CAST({t}._file_hash AS VARCHAR))"
            if only_new
            else ""
        )
        selects.append(
            f"SELECT {_sql_text(t)} AS tbl, CAST(_file AS VARCHAR) AS file, "
            f"CAST(_file_hash AS VARCHAR) AS file_hash, CAST(_row AS INTEGER) AS row, "
            f"hash(struct_pack({', '.join(body)})) AS digest FROM {t}{where}"
        )
    return " UNION ALL ".join(selects)


def _rows_changed(con: duckdb.DuckDBPyConnection) -> None:
    """What the file versions new (``_mv_new``, digests ``_rd_new``) and gone (``_mv_gone``,
    digests kept in ``identity_row_digest``) really change, row by row: a row of a new version
    whose content a row of the gone version of the same file had (the same digest, matched
    one to one: a multiset) is the same row re-exported, whatever its number.

    * ``_row_same`` (source, file, row): the rows of the new versions matched so, and
      ``_row_inplace`` those of them matched under their own row number;
    * ``_row_gone``: the mentions (as ``person_mention``) of the gone versions' rows left
      unmatched (removed, or changed);
    * ``_row_chg_id`` / ``_row_chg_acct``: the IDs and accounts of the mentions of every
      unmatched row, gone or new.

    A gone version without stored digests (an older warehouse) matches nothing: every row of
    it and of its successor counts as changed, as before digests were kept."""
    has_old = "identity_row_digest" in _tables(con)
    old = (
        """SELECT d.* FROM identity_row_digest d SEMI JOIN _mv_gone g
            ON g.tbl = d.tbl AND g.file = d.file AND g.file_hash IS NOT DISTINCT FROM d.file_hash"""
        if has_old
        else "SELECT * FROM _rd_new LIMIT 0"
    )
    con.execute(f"CREATE OR REPLACE TEMP TABLE _rd_old AS {old}")
    # the k-th row (by number) of a digest in one version matches the k-th of the other
    rank = """SELECT tbl, file, file_hash, row, digest,
        row_number() OVER (PARTITION BY tbl, file, digest ORDER BY row) AS k FROM {}"""
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _rd_pair AS
        SELECT n.tbl, n.file, n.row AS new_row, o.row AS old_row, n.file_hash AS new_hash,
            o.file_hash AS old_hash
        FROM ({rank.format("_rd_new")}) n JOIN ({rank.format("_rd_old")}) o
            USING (tbl, file, digest, k)"""
    )
    con.execute(
        """INSERT INTO _row_same SELECT substr(tbl, 5) AS source, file, new_row
        FROM _rd_pair"""
    )
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _row_inplace AS SELECT source, file, row
        FROM _row_same s WHERE EXISTS (SELECT 1 FROM _rd_pair p WHERE p.tbl = 'src_' || s.source
            AND p.file = s.file AND p.new_row = s.row AND p.old_row = p.new_row)"""
    )
    con.execute(
        """INSERT INTO _row_gone SELECT m.* FROM person_mention m SEMI JOIN _mv_gone g
            ON g.tbl = 'src_' || m.source AND g.file = m.file
            AND g.file_hash IS NOT DISTINCT FROM m.file_hash
        WHERE NOT EXISTS (SELECT 1 FROM _rd_pair p WHERE p.tbl = 'src_' || m.source
            AND p.file = m.file AND p.old_row = m.row)"""
    )
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _row_added AS SELECT n.id, n.account FROM _pm_new n
        WHERE NOT EXISTS (SELECT 1 FROM _row_same r WHERE r.source = n.source
            AND r.file = n.file AND r.row = n.row)"""
    )
    con.execute(
        """INSERT INTO _row_chg_id SELECT DISTINCT id FROM (SELECT id FROM _row_gone
            UNION ALL SELECT id FROM _row_added) WHERE id IS NOT NULL"""
    )
    con.execute(
        """INSERT INTO _row_chg_acct SELECT DISTINCT account FROM (SELECT account
            FROM _row_gone UNION ALL SELECT account FROM _row_added)
        WHERE account IS NOT NULL"""
    )
    for t in ("_rd_old", "_row_added"):
        con.execute(f"DROP TABLE {t}")


def _carry_links(con: duckdb.DuckDBPyConnection) -> None:
    """The links of the rows a re-exported file version kept unchanged *and in place* (the
    same content under the same row number, ``_rd_pair``) move to the new version (its file
    hash): such a row's mentions are the old ones to the last column but the file hash, so,
    like the rows of a file version that did not change, they keep their link, and
    identity.incremental keeps it unless the change reaches it. (A row that moved keeps no
    link: ids and keys made of its row number would differ; it is resolved again.) Runs in
    the transaction that replaces the mentions."""
    if "identity_link" not in _tables(con) or "file_hash" not in _columns(con, "identity_link"):
        return
    con.execute(
        """UPDATE identity_link l SET file_hash = p.new_hash FROM _rd_pair p
        WHERE p.tbl = 'src_' || l.source AND p.file = l.file AND p.old_row = l.row
            AND p.new_row = p.old_row AND l.file_hash IS NOT DISTINCT FROM p.old_hash"""
    )


# village names as written (马冲村村民委员会, 马冲村3组, 马冲村民委员会, 马冲 村) -> 马冲村;
# idempotent on names a `village` normalizer has cleaned already
_VILLAGE_CLEAN = """nullif(regexp_replace(regexp_replace(regexp_replace(regexp_replace(
    regexp_replace(CAST(village AS VARCHAR), '[\\s\u3000]+', '', 'g'),
    '([0-9一二三四五六七八九十]+(村民小组|组|队))$', ''),
    '(村民委员会|村委会|村民委|村委)$', '村'),
    '(社区居民委员会|社区居委会|居民委员会|居委会)$', '社区'),
    '村村$', '村'), '')"""
