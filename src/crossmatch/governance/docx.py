"""纪检监察建议书 drafts in Word, from a template users can edit (docxtpl = Jinja in .docx).

The template ``templates/纪检监察建议书.docx`` is an ordinary Word file holding Jinja tags
(``{{ department }}``, a table row looping ``{%tr for p in problems %}``, paragraphs looping
``{%p for x in fixes %}``); edit its wording, letterhead and fonts in Word, keep the tags.
:func:`build_template` writes the stock template again (``crossmatch suggest template``).

Variables: ``number`` (JJJY-2026-001), ``department``, ``title``, ``region``, ``issued_on``,
``deadline``, ``problems`` (title, region, who, cases, people, months, amount, clues), ``cause``,
``fixes``, ``clue_ids`` (the 线索编号 behind the finding), ``issuer``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

TEMPLATE = Path(__file__).resolve().parent / "templates" / "纪检监察建议书.docx"


def build_template(path: str | Path = TEMPLATE) -> Path:
    """Write the stock template (python-docx; every tag in one run so Word keeps it whole)."""
    from docx import Document
    from docx.enum.text import WD_ALIGN_PARAGRAPH
    from docx.shared import Pt

    doc = Document()
    style = doc.styles["Normal"]
    style.font.size = Pt(12)
    h = doc.add_paragraph()
    h.alignment = WD_ALIGN_PARAGRAPH.CENTER
    r = h.add_run("纪检监察建议书")
    r.bold = True
    r.font.size = Pt(20)
    n = doc.add_paragraph("{{ number }}")
    n.alignment = WD_ALIGN_PARAGRAPH.CENTER
    doc.add_paragraph("{{ department }}：")
    doc.add_paragraph(
        "我委在惠民惠农资金大数据监督中，对{{ region }}发放数据开展类案分析，发现{{ title }}问题。"
        "现将有关情况通报如下，并提出纪检监察建议。"
    )
    doc.add_heading("一、发现的问题", level=2)
    table = doc.add_table(rows=3, cols=7)
    table.style = "Table Grid"
    head = ("问题", "地区", "涉及人员", "件数", "人数", "月数", "涉及金额(元)")
    for cell, text in zip(table.rows[0].cells, head, strict=True):
        cell.text = text
    table.rows[1].cells[0].text = "{%tr for p in problems %}"
    row = (
        "{{ p.title }}", "{{ p.region }}", "{{ p.who }}", "{{ p.cases }}", "{{ p.people }}",
        "{{ p.months }}", "{{ p.amount_text }}",
    )  # fmt: skip
    for cell, text in zip(table.rows[2].cells, row, strict=True):
        cell.text = text
    end = table.add_row()
    end.cells[0].text = "{%tr endfor %}"
    doc.add_paragraph("以上问题涉及问题线索 {{ clue_count }} 条（线索编号：{{ clue_list }}）。")
    doc.add_heading("二、问题成因", level=2)
    doc.add_paragraph("{{ cause }}")
    doc.add_heading("三、纪检监察建议", level=2)
    doc.add_paragraph("{%p for x in fixes %}")
    doc.add_paragraph("{{ loop.index }}. {{ x }}")
    doc.add_paragraph("{%p endfor %}")
    doc.add_heading("四、整改要求", level=2)
    doc.add_paragraph(
        "请于{{ deadline }}前将整改落实情况（整改措施、制度建设、停发追回金额）书面回复我委。"
        "我委将开展跟踪回访，并在后续数据比对中检验整改成效。"
    )
    sig = doc.add_paragraph("{{ issuer }}")
    sig.alignment = WD_ALIGN_PARAGRAPH.RIGHT
    d = doc.add_paragraph("{{ issued_on }}")
    d.alignment = WD_ALIGN_PARAGRAPH.RIGHT
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    doc.save(str(p))
    return p


def _cn_date(d: Any) -> str:
    if isinstance(d, str):
        d = dt.date.fromisoformat(d[:10])
    return f"{d.year}年{d.month}月{d.day}日"


def context(suggestion: dict[str, Any], issuer: str = "县纪委监委") -> dict[str, Any]:
    """The template's variables from one :func:`suggestions.suggestions` item."""
    problems = []
    for p in suggestion.get("problems") or []:
        problems.append({**p, "amount_text": f"{float(p.get('amount') or 0):,.2f}"})
    clue_ids = list(suggestion.get("clue_ids") or [])
    return {
        "number": suggestion["suggestion_id"],
        "department": suggestion["department"],
        "title": suggestion["title"],
        "region": suggestion.get("region") or "全县",
        "problems": problems,
        "cause": suggestion.get("cause") or "",
        "fixes": list(suggestion.get("fixes") or []),
        "deadline": _cn_date(suggestion["deadline"]),
        "issued_on": _cn_date(suggestion["issued_on"]),
        "clue_count": len(clue_ids),
        "clue_list": "、".join(clue_ids[:20]) + (" 等" if len(clue_ids) > 20 else ""),
        "issuer": issuer,
    }


def render(
    suggestion: dict[str, Any],
    out: str | Path,
    *,
    template: str | Path | None = None,
    issuer: str = "县纪委监委",
) -> Path:
    """Fill the template for one suggestion and save the .docx to ``out``."""
    from docxtpl import DocxTemplate

    tpl = DocxTemplate(str(template or TEMPLATE))
    tpl.render(context(suggestion, issuer))
    p = Path(out)
    p.parent.mkdir(parents=True, exist_ok=True)
    tpl.save(str(p))
    return p
