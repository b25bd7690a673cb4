"""Which columns of which canonical tables carry persons (data contract sections 4-5).

The source specs (``sources/*.yaml``, parsed by :mod:`crossmatch.spec.sources`) declare each
source's person roles; :func:`roles_from_specs` turns them into :class:`RoleRef`. Without specs
(tests, a warehouse built elsewhere) :func:`default_roles` gives the contract's table, so
identity resolution never needs per-source code.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RoleRef:
    """One person role of one source: name/ID columns and context columns.

    ``context`` keys understood by the resolver: ``village_code``, ``village`` (a village
    *name*; mapped to its code through the records that give both), ``account``, ``township``
    (a township *name*, used to find handlers among payroll staff), ``unit`` (employer name),
    ``date`` (the record's date or month ``YYYY-MM``: a candidate who had died before it is
    passed over when a living one fits).
    """

    source: str
    role: str
    name: str | None
    id: str | None
    context: dict[str, str] = field(default_factory=dict)

    @property
    def table(self) -> str:
        return f"src_{self.source}"


# (source, role, has_id, context) per the contract; name column = f"{role}_name" etc.
_CONTRACT: list[tuple[str, str, bool, dict[str, str]]] = [
    ("hukou", "person", True, {"village_code": "village_code"}),
    ("death", "person", True, {}),
    ("cremation", "person", True, {}),
    ("marriage", "husband", True, {}),
    ("marriage", "wife", True, {}),
    ("assistance", "applicant", True, {"village_code": "village_code", "village": "village"}),
    ("assistance", "member", True, {"village_code": "village_code", "village": "village"}),
    ("assistance", "handler", False, {"township": "township"}),
    ("assistance", "approver", False, {"township": "township"}),
    ("elderly", "person", True, {"village_code": "village_code", "village": "village"}),
    ("proxy_filing", "beneficiary", True, {}),
    ("proxy_filing", "agent", True, {"account": "account"}),
    (
        "payment",
        "payee",
        True,
        {
            "village_code": "village_code",
            "village": "village",
            "account": "account",
            "date": "period",
        },
    ),
    ("payroll", "person", True, {"unit": "unit_name"}),
    ("cadre", "person", True, {"village_code": "village_code", "village": "village"}),
    ("relative_filing", "cadre", True, {}),
    ("relative_filing", "relative", True, {}),
    ("property", "owner", True, {}),
    ("vehicle", "owner", True, {}),
    ("enterprise", "legal_rep", True, {}),
    ("shareholder", "holder", True, {}),
    ("land_contract", "contractor", True, {"village_code": "village_code", "village": "village"}),
    ("farmland_subsidy", "person", True, {"village_code": "village_code", "village": "village"}),
    ("bank_account", "holder", True, {"account": "account"}),
    ("school_staff", "person", True, {"unit": "school_name"}),
]


def default_roles() -> list[RoleRef]:
    """The contract's person roles (``R_name``/``R_id`` naming)."""
    return [
        RoleRef(src, role, f"{role}_name", f"{role}_id" if has_id else None, dict(ctx))
        for src, role, has_id, ctx in _CONTRACT
    ]


def roles_from_specs(specs: Iterable[Any]) -> list[RoleRef]:
    """RoleRefs from parsed :class:`crossmatch.spec.sources.SourceSpec` objects.

    Duck-typed (``spec.id``, ``spec.persons[i].role/.name/.id/.context``) so the resolver does
    not depend on the spec module's internals.
    """
    out: list[RoleRef] = []
    for spec in specs:
        for p in getattr(spec, "persons", ()) or ():
            out.append(RoleRef(spec.id, p.role, p.name, p.id, dict(p.context or {})))
    return out
