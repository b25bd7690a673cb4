"""Spec files: parse and validate ``sources/*.yaml`` (and, via plug-ins, ``rules/*.yaml``).

Pure: nothing here reads department data (the raw-header check of ``crossmatch validate --raw``
is a validator registered by ``crossmatch.ingest.header_check``).

Public API (used by ingestion, identity resolution and the rule engine)::

    from crossmatch.spec import load_sources
    for spec in load_sources("sources"):      # list[SourceSpec]; SpecError lists all problems
        spec.id          # 'payment'
        spec.table       # 'src_payment'
        spec.fields      # tuple[FieldSpec]: .name, .columns (header aliases), .normalizer, ...
        spec.columns()   # [(column, duckdb type)] of src_payment, lineage first
        spec.persons     # tuple[PersonRole]: .role 'payee', .name 'payee_name',
                         #   .id 'payee_id', .context {'village_code': 'village_code', ...}

A person role ``R`` whose ``id`` field is ``R_id`` gives columns ``R_id`` (canonical 18-digit or
NULL), ``R_id_raw``, ``R_id_status``, ``R_id_birth_date``, ``R_id_sex``, ``R_id_region``; its
``name`` field ``R_name`` gives ``R_name`` (normalised) and ``R_name_raw``.

Source file format (one per department export)::

    source: payment                   # = file name; table src_payment
    description: 一卡通发放明细 (财政局)
    files: [finance/一卡通发放明细_*.csv]   # glob(s) under the raw folder
    format: csv                       # csv | xlsx | html | json | parquet (default: file
                                      # extension; an .xls/.xlsx is read by its content:
                                      # xlsx, old BIFF .xls or an HTML table)
    records: data                     # json: the key of the list of records
    encoding: auto                    # auto (UTF-8 / UTF-8 BOM / GB18030) | utf-8 | gb18030 ...
    header_row: auto                  # auto: first row matching the mapped headers | N
    null_values: ['\\N']              # texts meaning NULL in every column (a database dump)
    fields:
      batch_no: 发放批次号               # shorthand: header -> text
      payee_name: {column: [收款人姓名, 姓名], normalizer: name}
      payee_id: {column: [收款人身份证号, 身份证号, 公民身份号码], normalizer: id}
      amount: {column: 发放金额, normalizer: amount, required: true}
      status: {column: 发放状态, normalizer: enum, map: {成功: success, 失败: failed}}
      bank: {column: 开户银行, optional: true}   # column may be missing from a file
      pay_date: {column: 发放日期, normalizer: date, on_error: null}   # bad -> NULL, counted
      term_end: {column: 任职结束, normalizer: date, month: end, null_values: [至今]}
    persons:
      - role: payee
        name: payee_name
        id: payee_id
        context: {village_code: village_code, account: account}

Validation plug-ins: ``validate_all({"sources": dir, "rules": dir, "raw": dir})`` runs every
registered validator and returns all problems (``file:line: message; fix: ...``). A validator
is ``f(paths: dict[str, Path | None]) -> list[Problem]``; register it with
:func:`register_validator` in its module and add the module to ``VALIDATOR_MODULES`` (imported
lazily, by name: the plug-ins live in higher layers; a missing module is skipped), e.g.
``crossmatch.detect.rule_check`` registering ``"rules"``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from crossmatch.spec.common import Problem, Problems
from crossmatch.spec.sources import (
    FieldSpec,
    PersonRole,
    SourceSpec,
    load_sources,
    parse_source_file,
    validate_sources,
)

__all__ = [
    "VALIDATOR_MODULES",
    "FieldSpec",
    "PersonRole",
    "Problem",
    "Problems",
    "SourceSpec",
    "load_sources",
    "parse_source_file",
    "register_validator",
    "validate_all",
]

Validator = Callable[[Mapping[str, Any]], list[Problem]]
_VALIDATORS: dict[str, Validator] = {}

#: Modules that register validators when imported (a module that does not exist yet is skipped).
VALIDATOR_MODULES: list[str] = ["crossmatch.detect.rule_check", "crossmatch.ingest.header_check"]


def register_validator(name: str, func: Validator) -> None:
    """Register (or replace) the validator called ``name``."""
    _VALIDATORS[name] = func


register_validator("sources", validate_sources)


def _load_plugins() -> None:
    for mod in VALIDATOR_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:  # the module exists but one of its imports is missing: real bug
                raise


def validators() -> dict[str, Validator]:
    """All registered validators by name (plug-in modules imported first)."""
    _load_plugins()
    return dict(_VALIDATORS)


def validate_all(paths: Mapping[str, str | Path | None]) -> list[Problem]:
    """Run every registered validator over ``paths`` (keys: sources, rules, raw ...) and
    return all problems, sorted by file and line. Never raises on bad specs."""
    norm = {k: (Path(v) if v is not None else None) for k, v in paths.items()}
    problems = Problems()
    for _name, func in sorted(validators().items()):
        problems.extend(func(norm))
    return sorted(problems, key=lambda p: (p.file, p.line))
