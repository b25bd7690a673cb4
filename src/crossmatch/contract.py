"""The warehouse contract: what the rules may read (tables, columns, person roles).

One neutral module that no stage owns. The source tables are *derived* from the source mapping
files (``sources/*.yaml``): every field of a source becomes the columns its normalizer writes
(``name`` -> ``R_name``, ``R_name_raw``; ``id`` -> ``R_id``, ``R_id_raw``, ``R_id_status``; a
date field one DATE column ...), every person role adds ``R_pid`` in the resolved view
``r_<source>``, and the lineage columns close the row. The tables the stages themselves write
(``person``, ``identity_link``, ``ingest_file``, ``kin_edge``, ``kin_relative``) are spelled out
here once.

The active contract is the shipped mapping set (``sources/`` beside the package) plus any
folder given with :func:`use` (the CLI does this for ``--sources``): a new department source is
one YAML file, and a rule reading it validates and runs without Python.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from crossmatch import normalize

#: Lineage columns every source row carries (ingest writes them).
LINEAGE: list[tuple[str, str]] = [
    ("_source", "VARCHAR"),
    ("_file", "VARCHAR"),
    ("_file_hash", "VARCHAR"),
    ("_row", "INTEGER"),
    ("_dup_of", "INTEGER"),
]

#: Identity's and ingest's tables the rules may read.
STAGE_TABLES: dict[str, list[tuple[str, str]]] = {
    "person": [
        ("person_id", "VARCHAR"),
        ("name", "VARCHAR"),
        ("id_number", "VARCHAR"),
        ("birth_date", "DATE"),
        ("sex", "VARCHAR"),
        ("household_no", "VARCHAR"),
        ("village_code", "VARCHAR"),
        ("in_registry", "BOOLEAN"),
        ("death_date", "DATE"),
    ],
    "identity_link": [
        ("source", "VARCHAR"),
        ("file", "VARCHAR"),
        ("row", "INTEGER"),
        ("role", "VARCHAR"),
        ("person_id", "VARCHAR"),
        ("method", "VARCHAR"),
        ("probability", "DOUBLE"),
        ("cluster_id", "VARCHAR"),
    ],
    "ingest_file": [
        ("source", "VARCHAR"),
        ("file", "VARCHAR"),
        ("hash", "VARCHAR"),
        ("spec_digest", "VARCHAR"),
        ("rows_read", "INTEGER"),
        ("rows_loaded", "INTEGER"),
        ("rows_quarantined", "INTEGER"),
        ("rows_duplicate", "INTEGER"),
        ("loaded_at", "TIMESTAMP"),
        ("status", "VARCHAR"),
        ("message", "VARCHAR"),
    ],
}

#: The kinship stage's tables (written by ``crossmatch.kinship``).
KINSHIP_TABLES: dict[str, list[tuple[str, str]]] = {
    "kin_edge": [
        ("a_pid", "VARCHAR"),
        ("b_pid", "VARCHAR"),
        ("relation", "VARCHAR"),
        ("relation_cn", "VARCHAR"),
        ("source", "VARCHAR"),
        ("evidence", "VARCHAR"),
        ("valid_from", "DATE"),
        ("valid_to", "DATE"),
        ("file", "VARCHAR"),
        ("row", "INTEGER"),
        ("link_pid", "VARCHAR"),
    ],
    "kin_relative": [
        ("person_pid", "VARCHAR"),
        ("relative_pid", "VARCHAR"),
        ("relation", "VARCHAR"),
        ("relation_cn", "VARCHAR"),
        ("path", "VARCHAR"),
        ("hops", "INTEGER"),
        ("is_close", "BOOLEAN"),
        ("valid_from", "DATE"),
        ("valid_to", "DATE"),
    ],
}

#: Outputs of the ``id`` normalizer that belong to a person role's columns; the others
#: (``_birth_date``, ``_sex``, ``_region``) are derived from the ID and read through ``person``.
_ROLE_ID_OUTPUTS = ("", "_raw", "_status")
#: Integers are INTEGER in the contract (the warehouse may hold BIGINT: DuckDB casts either way).
_TYPE_OVERRIDES = {"BIGINT": "INTEGER"}

#: The shipped mapping set: ``<repo>/sources`` (next to ``src/``).
DEFAULT_SOURCES_DIR = Path(__file__).resolve().parents[2] / "sources"


@dataclass(frozen=True)
class SourceContract:
    """One source's readable columns: ``columns`` in mapping order (name, DuckDB type); its
    person roles, named by their columns' prefix (``person_name`` -> ``person``): every one gets
    ``R_pid`` in ``r_<source>``; ``id_roles`` are those with an ID number column."""

    id: str
    columns: tuple[tuple[str, str], ...]
    roles: tuple[str, ...] = ()
    id_roles: tuple[str, ...] = ()
    path: str = ""

    def resolved_columns(self) -> list[tuple[str, str]]:
        """Columns of ``r_<source>``: fields, ``R_pid`` after each role's columns, lineage."""
        out: list[tuple[str, str]] = []
        pid_after = {self._last_column_of(r): r for r in self.roles}
        for col in self.columns:
            out.append(col)
            if col[0] in pid_after:
                out.append((f"{pid_after[col[0]]}_pid", "VARCHAR"))
        return out + LINEAGE

    def _last_column_of(self, role: str) -> str:
        names = [c for c, _ in self.columns if c.startswith(f"{role}_")]
        return names[-1] if names else ""


@dataclass
class Contract:
    """Every table the rules may read, with its columns."""

    sources: dict[str, SourceContract] = field(default_factory=dict)

    def roles(self, source: str) -> list[str]:
        """Person roles of a source that carry an ID number (``R_id``), in mapping order."""
        return list(self.sources[source].id_roles)

    def resolved_columns(self, source: str) -> list[tuple[str, str]]:
        return self.sources[source].resolved_columns()

    def columns_of(self, table: str) -> list[tuple[str, str]]:
        """Contract columns of any readable table (``r_*``, person, kinship ...)."""
        if table.startswith("r_") and table[2:] in self.sources:
            return self.resolved_columns(table[2:])
        if table in STAGE_TABLES:
            return STAGE_TABLES[table]
        if table in KINSHIP_TABLES:
            return KINSHIP_TABLES[table]
        raise KeyError(table)

    def tables(self) -> list[str]:
        return [f"r_{s}" for s in self.sources] + list(STAGE_TABLES) + list(KINSHIP_TABLES)


def _field_columns(
    name: str, spec: object, roles_by_field: dict[str, str]
) -> list[tuple[str, str]]:
    norm_name = spec.get("normalizer", "text") if isinstance(spec, dict) else "text"
    norm = normalize.NORMALIZERS.get(str(norm_name))
    outputs = dict(norm.outputs) if norm else {"": "VARCHAR"}
    if (name in roles_by_field and roles_by_field[name] == "id") or "_birth_date" in outputs:
        outputs = {k: v for k, v in outputs.items() if k in _ROLE_ID_OUTPUTS}
    return [(name + suffix, _TYPE_OVERRIDES.get(t, t)) for suffix, t in outputs.items()]


def source_contract(doc: dict, path: str = "") -> SourceContract:
    """The contract of one parsed mapping file (a YAML mapping with ``source`` and ``fields``)."""
    fields = doc.get("fields") or {}
    persons = doc.get("persons") or []
    roles_by_field: dict[str, str] = {}
    prefixes: list[str] = []  # a role's columns are named after its fields: person_name -> person
    with_id: list[str] = []
    for p in persons:
        if not isinstance(p, dict) or "role" not in p:
            continue
        prefix = str(p["role"])
        for kind in ("name", "id"):
            f = p.get(kind)
            if f:
                roles_by_field[str(f)] = kind
                if str(f).endswith(f"_{kind}"):
                    prefix = str(f)[: -len(kind) - 1]
        prefixes.append(prefix)
        if p.get("id"):
            with_id.append(prefix)
    parts = [fields] + [j.get("fields") or {} for j in doc.get("join") or [] if isinstance(j, dict)]
    cols: list[tuple[str, str]] = []
    for part in parts:
        for name, spec in part.items():
            cols += _field_columns(str(name), spec, roles_by_field)
    return SourceContract(str(doc["source"]), tuple(cols), tuple(prefixes), tuple(with_id), path)


def contract_of(dirs: Iterable[str | Path]) -> Contract:
    """The contract of the mapping sets in ``dirs`` (``*.yaml`` directly in each; a later folder
    adds sources and replaces a source it also maps)."""
    out = Contract()
    for d in dirs:
        for f in sorted(Path(d).glob("*.yaml")):
            try:
                doc = yaml.safe_load(f.read_text("utf-8"))
            except (OSError, yaml.YAMLError):
                continue  # reported with file:line by `crossmatch validate`
            if not (isinstance(doc, dict) and isinstance(doc.get("source"), str)):
                continue
            if isinstance(doc.get("fields"), dict):
                sc = source_contract(doc, str(f))
                if d != DEFAULT_SOURCES_DIR and sc.id in out.sources:
                    continue  # a layout's own mapping of a shipped source: same contract
                out.sources[sc.id] = sc
    return out


_extra_dirs: list[Path] = []


@functools.cache
def _cached(dirs: tuple[Path, ...]) -> Contract:
    return contract_of(dirs)


def active() -> Contract:
    """The shipped mapping set plus every folder passed to :func:`use`."""
    return _cached(key())


def use(sources_dir: str | Path | None) -> Contract:
    """Add the sources of ``sources_dir`` (a folder of mapping files) to the active contract."""
    if sources_dir is not None:
        p = Path(sources_dir).resolve()
        if p.is_dir() and p != DEFAULT_SOURCES_DIR and p not in _extra_dirs:
            _extra_dirs.append(p)
    return active()


def key() -> tuple[Path, ...]:
    """The folders the active contract is made of (what a cache of derived rule needs keys on)."""
    return (DEFAULT_SOURCES_DIR, *_extra_dirs)


def reset() -> None:
    """Back to the shipped mapping set only (tests)."""
    _extra_dirs.clear()
