"""Partition a warehouse by the persons' home region, keeping linkage groups whole.

1. **Linkage groups**: the connected components of a graph whose nodes are persons
   (``p:<pid>``), assistance cases (``c:<case_no>``), registered households (``h:<household_no>``),
   enterprises (``e:<credit_code>``) and bank accounts (``a:<account>``, normalised like
   ``norm_account`` in ``detect/base.sql``), with an edge from each of those keys to the persons
   a row names in its linking roles (:data:`GROUP_EDGES`: the case's applicant and members, the
   household's registered person, not the father and mother columns). Kinship is *not* an
   edge: chained through marriages it grows one giant component (on the sample, with kinship,
   the largest group holds over a thousand persons; without it, 87 nodes), so rules reading
   relatives run in the cross step.
2. **Home region**: a person's ``person.village_code`` cut to ``level`` digits (9 = township,
   6 = county); a group's region is the smallest region among its persons.
3. **Partitions**: regions are packed into ``n`` partitions, largest first onto the lightest
   (whole regions, so a partition is a set of townships or counties); a group without any region
   goes by a hash of its first node.
4. **Routing**: a row of ``r_<source>`` goes to the partition of every node it names (so a
   property co-owned across two groups is in both); rows of sources that name no person
   (standards, contracts) go to every partition; ``person`` rows go where their group is and
   wherever a routed row names them; ``identity_link`` rows follow their source row.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pyarrow as pa

from crossmatch.detect import needs as rule_needs
from crossmatch.detect import schema

log = logging.getLogger(__name__)


def _arrow(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> pa.Table:
    """A query's rows as an Arrow table. Through ``execute`` (``con.sql`` refuses while an
    earlier statement's result is open); the copy it warns about is small next to the query."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return con.execute(sql, params or []).to_arrow_table()


#: source -> (node prefix, SQL expression of the key, roles) linking the persons in those roles of a
#: row into one group (a hukou row's father and mother are not: their own household is theirs).
GROUP_EDGES: dict[str, list[tuple[str, str, tuple[str, ...]]]] = {
    "assistance": [("c:", "case_no", ("applicant", "member"))],
    "hukou": [("h:", "household_no", ("person",))],
    "enterprise": [("e:", "credit_code", ("legal_rep",))],
    "shareholder": [("e:", "credit_code", ("holder",))],
    "payment": [("a:", "norm_account(account)", ("payee",))],
    "bank_account": [("a:", "norm_account(account)", ("holder",))],
}
#: Subject prefixes of hits -> node prefix (a hit's owner is the partition of its subject's node).
SUBJECT_NODES = {"case:": "c:", "account:": "a:"}


@dataclass
class PartitionPlan:
    """Partitions of one warehouse: ``_scale_node(node, grp, part)`` is left on the connection."""

    level: int
    n: int
    regions: dict[str, int] = field(default_factory=dict)  # region -> partition
    persons: list[int] = field(default_factory=list)  # persons homed per partition
    groups: int = 0
    largest_group: int = 0
    rows: dict[int, int] = field(default_factory=dict)  # rows shipped per partition
    unrouted: dict[str, int] = field(default_factory=dict)  # source -> rows naming no node

    def summary(self) -> str:
        per = ", ".join(
            f"p{i}: {self.persons[i]} persons, {self.rows.get(i, 0)} rows" for i in range(self.n)
        )
        return (
            f"{self.n} partitions by region (level {self.level}: {len(self.regions)} regions); "
            f"{self.groups} linkage groups, largest {self.largest_group} nodes; {per}"
        )


def _norm_account_macro(con: duckdb.DuckDBPyConnection) -> None:
    """The exact ``norm_account`` of ``detect/base.sql`` (the group key must equal the rules')."""
    for kind, name, body in rule_needs.base_statements():
        if kind == "MACRO" and name == "norm_account":
            con.execute(f"CREATE OR REPLACE TEMP MACRO norm_account(a) AS {body}")
            return
    raise RuntimeError("detect/base.sql defines no norm_account macro")


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    return {r[0] for r in con.execute(f'DESCRIBE "{table}"').fetchall()}


def _pid_columns(con: duckdb.DuckDBPyConnection, source: str) -> list[str]:
    """The person columns ``r_<source>`` has (a role identity did not resolve has none)."""
    have = _columns(con, f"r_{source}")
    return [c for r in schema.roles(source) if (c := f"{r}_pid") in have]


def _edges(con: duckdb.DuckDBPyConnection, source: str) -> list[tuple[str, str, list[str]]]:
    """(node prefix, key expression, person columns) of the group edges ``r_<source>`` has."""
    have = _columns(con, f"r_{source}")
    return [
        (pre, e, [f"{r}_pid" for r in roles if f"{r}_pid" in have])
        for pre, e, roles in GROUP_EDGES.get(source, [])
        if _key_column(e) in have
    ]


def _key_column(expr: str) -> str:
    return expr.split("(")[-1].rstrip(")")


def _row_nodes(con: duckdb.DuckDBPyConnection, source: str) -> list[str]:
    """SQL expressions of the nodes one row of ``r_<source>`` names (NULL where absent)."""
    out = [f"'p:' || {c}" for c in _pid_columns(con, source)]
    out += [f"'{pre}' || {expr}" for pre, expr, _pids in _edges(con, source)]
    return out


def plan_partitions(
    con: duckdb.DuckDBPyConnection, *, level: int = 9, partitions: int | None = None
) -> PartitionPlan:
    """Compute linkage groups and their partitions (module docstring); leaves the temp table
    ``_scale_node(node, grp, part)`` on ``con``."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    _norm_account_macro(con)
    have = schema.existing_relations(con)
    parts = ["SELECT 'p:' || person_id AS a, 'p:' || person_id AS b FROM person"]
    for src in schema.SOURCES:
        if f"r_{src}" not in have:
            continue
        pids = _pid_columns(con, src)
        for pre, expr, linked in _edges(con, src):
            for pid in linked:
                parts.append(
                    f"SELECT '{pre}' || {expr}, 'p:' || {pid} FROM r_{src} "
                    f"WHERE {expr} IS NOT NULL AND {pid} IS NOT NULL"
                )
        for pid in pids:  # every person a row names is a node
            parts.append(
                f"SELECT 'p:' || {pid}, 'p:' || {pid} FROM r_{src} WHERE {pid} IS NOT NULL"
            )
    edges = con.execute(f"SELECT DISTINCT a, b FROM ({' UNION ALL '.join(parts)})").fetchnumpy()
    a = edges["a"].astype(object)
    b = edges["b"].astype(object)
    nodes, inv = np.unique(np.concatenate([a, b]).astype(str), return_inverse=True)
    m = len(a)
    graph = coo_matrix((np.ones(m), (inv[:m], inv[m:])), shape=(len(nodes), len(nodes)))
    ngroups, label = connected_components(graph, directed=False)
    con.register("_scale_nodes_in", pa.table({"node": nodes, "grp": label.astype(np.int64)}))
    con.execute("CREATE OR REPLACE TEMP TABLE _scale_group AS SELECT * FROM _scale_nodes_in")
    con.unregister("_scale_nodes_in")
    # group -> home region: the smallest region among its persons
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _scale_group_region AS
        SELECT g.grp, min(substr(p.village_code, 1, {int(level)})) AS region,
               count(p.person_id) AS persons, min(g.node) AS first_node
        FROM _scale_group g
        LEFT JOIN person p ON 'p:' || p.person_id = g.node
        GROUP BY g.grp
        """
    )
    sizes = con.execute(
        "SELECT region, sum(persons) FROM _scale_group_region WHERE region IS NOT NULL "
        "GROUP BY region ORDER BY 2 DESC, 1"
    ).fetchall()
    n = partitions or max(1, len(sizes))
    load = [0] * n
    regions: dict[str, int] = {}
    for region, weight in sizes:  # largest region first onto the lightest partition
        k = min(range(n), key=lambda i: (load[i], i))
        regions[region] = k
        load[k] += int(weight)
    reg = pa.table({"region": list(regions), "part": pa.array(list(regions.values()), pa.int64())})
    con.register("_scale_regions_in", reg)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _scale_node AS
        SELECT g.node, g.grp,
               coalesce(r.part, CAST(hash(gr.first_node) % {n} AS BIGINT)) AS part
        FROM _scale_group g
        JOIN _scale_group_region gr USING (grp)
        LEFT JOIN _scale_regions_in r ON r.region = gr.region
        """
    )
    con.unregister("_scale_regions_in")
    persons = [0] * n
    for part, cnt in con.execute(
        "SELECT part, count(*) FROM _scale_node WHERE node LIKE 'p:%' GROUP BY part"
    ).fetchall():
        persons[int(part)] = int(cnt)
    largest = con.execute("SELECT max(c) FROM (SELECT count(*) c FROM _scale_group GROUP BY grp)")
    return PartitionPlan(
        level=level,
        n=n,
        regions=regions,
        persons=persons,
        groups=int(ngroups),
        largest_group=int((largest.fetchone() or [0])[0] or 0),
    )


def route(
    con: duckdb.DuckDBPyConnection, plan: PartitionPlan, tables: set[str]
) -> dict[int, dict[str, pa.Table]]:
    """The rows of ``tables`` (``r_*``, ``person``, ``identity_link``) for each partition, as Arrow
    tables (module docstring, point 4). Fills ``plan.rows`` and ``plan.unrouted``."""
    have = schema.existing_relations(con)
    out: dict[int, dict[str, pa.Table]] = {k: {} for k in range(plan.n)}
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _scale_rowpart (source VARCHAR, file VARCHAR, row INTEGER, "
        "part BIGINT)"
    )
    con.execute("CREATE OR REPLACE TEMP TABLE _scale_pidpart (pid VARCHAR, part BIGINT)")
    for t in sorted(tables):
        if not t.startswith("r_") or t not in have or t[2:] not in schema.SOURCES:
            continue
        src = t[2:]
        nodes = _row_nodes(con, src)
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _scale_r AS "
            f'SELECT row_number() OVER () AS _rid, * FROM "{t}"'
        )
        if not nodes:  # names no person: every partition holds all of it
            tbl = _arrow(con, "SELECT * EXCLUDE (_rid) FROM _scale_r ORDER BY _rid")
            for k in range(plan.n):
                out[k][t] = tbl
                plan.rows[k] = plan.rows.get(k, 0) + tbl.num_rows
            continue
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE _scale_route AS
            SELECT DISTINCT k._rid, n.part
            FROM (SELECT _rid, unnest([{", ".join(nodes)}]) AS node FROM _scale_r) k
            JOIN _scale_node n ON n.node = k.node
            """
        )
        unrouted = con.execute(
            "SELECT count(*) FROM _scale_r ANTI JOIN _scale_route USING (_rid)"
        ).fetchone()
        if unrouted and unrouted[0]:
            plan.unrouted[src] = int(unrouted[0])
        con.execute(
            "INSERT INTO _scale_rowpart SELECT DISTINCT r._source, r._file, r._row, x.part "
            "FROM _scale_r r JOIN _scale_route x USING (_rid)"
        )
        pids = _pid_columns(con, src)
        if pids:
            con.execute(
                f"""
            INSERT INTO _scale_pidpart
            SELECT DISTINCT pid, part FROM (
                SELECT unnest([{", ".join(pids)}]) AS pid, x.part
                FROM _scale_r r JOIN _scale_route x USING (_rid)) WHERE pid IS NOT NULL
            """
            )
        for k in range(plan.n):
            tbl = _arrow(
                con,
                "SELECT * EXCLUDE (_rid) FROM _scale_r "
                "WHERE _rid IN (SELECT _rid FROM _scale_route WHERE part = ?) ORDER BY _rid",
                [k],
            )
            out[k][t] = tbl
            plan.rows[k] = plan.rows.get(k, 0) + tbl.num_rows
    if "person" in tables and "person" in have:
        con.execute(
            """
            CREATE OR REPLACE TEMP TABLE _scale_person AS
            SELECT DISTINCT p.*, x.part FROM person p
            JOIN (SELECT substr(node, 3) AS pid, part FROM _scale_node WHERE node LIKE 'p:%'
                  UNION SELECT pid, part FROM _scale_pidpart) x ON x.pid = p.person_id
            """
        )
        for k in range(plan.n):
            out[k]["person"] = _arrow(
                con,
                "SELECT * EXCLUDE (part) FROM _scale_person WHERE part = ? ORDER BY person_id",
                [k],
            )
    if "identity_link" in have:  # the evidence of every hit carries the links of its rows
        con.execute(
            """
            CREATE OR REPLACE TEMP TABLE _scale_link AS
            SELECT DISTINCT l.*, x.part FROM identity_link l
            JOIN _scale_rowpart x ON x.file = l.file AND x.row = l.row
            """
        )
        for k in range(plan.n):
            out[k]["identity_link"] = _arrow(
                con, "SELECT * EXCLUDE (part) FROM _scale_link WHERE part = ?", [k]
            )
    for tmp in ("_scale_r", "_scale_route", "_scale_person", "_scale_link"):
        con.execute(f"DROP TABLE IF EXISTS {tmp}")
    return out


def owner_node_sql(subject: str) -> str:
    """SQL expression: the node that owns a hit's subject (``case:X`` -> ``c:X`` ...)."""
    cases = " ".join(
        f"WHEN starts_with({subject}, '{pre}') THEN '{node}' || substr({subject}, {len(pre) + 1})"
        for pre, node in SUBJECT_NODES.items()
    )
    return f"CASE {cases} ELSE 'p:' || {subject} END"
