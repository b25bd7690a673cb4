"""What a file's first bytes say it is (:func:`sniff_kind`): a zip workbook, an old BIFF
.xls, an HTML table (often saved as ``.xls`` by web systems), JSON."""

from __future__ import annotations

import codecs

OLE_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # an old BIFF .xls (OLE2 compound file)


def sniff_kind(head: bytes) -> str | None:
    """What a file's first bytes look like: ``xlsx`` (zip), ``xls`` (BIFF/OLE2), ``html`` (an
    HTML table, often saved as ``.xls`` by web systems), ``json``; None for anything else."""
    if head.startswith(b"PK\x03\x04"):
        return "xlsx"
    if head.startswith(OLE_SIGNATURE):
        return "xls"
    text = head.lstrip(codecs.BOM_UTF8).lstrip()
    low = text[:512].lower()
    if low.startswith((b"<html", b"<!doctype html", b"<table", b"<?xml")) and (
        b"<table" in head.lower() or b"<html" in low
    ):
        return "html"
    if text[:1] in (b"{", b"["):
        return "json"
    return None
