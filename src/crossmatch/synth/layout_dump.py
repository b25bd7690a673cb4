# ruff: noqa: E501  (header tables read best one line per column)
"""Layout ``dump``: a county data-sharing platform's table dumps (数据共享交换平台, issue 17).

The platform copies every department's database table and hands out plain dumps of them, not
the departments' own Excel exports. What that looks like:

* one ``|``-delimited UTF-8 text file per table (no BOM), named by the table
  (``gongan/GA_HJRK.txt`` ...), every payment quarter in one year file;
* headers are the database's column names, pinyin initials (``XM``, ``GMSFHM``, ``XZQHDM``,
  ``FFJE``): what they mean is only in the data dictionary that comes with the dump
  (``数据字典.csv`` beside ``raw/``, never inside it);
* ``\\N`` for every NULL (MySQL's dump), even in text columns;
* a surrogate key ``ID`` first, and on every table ``SCBZ`` (删除标志: 0 live, 1 deleted) and
  ``GXSJ`` (the row's last update, ``2025-12-31 23:10:07``) last;
* **soft-deleted rows**: about 2% of the successful payments have an earlier version of the
  row kept with ``SCBZ = 1`` (the same 流水号, another amount: a corrected entry). They are not
  payments: a mapping that does not filter them counts payments twice or wrong;
* dates as the database stores them: birth dates ``19560312``, event dates as datetimes
  ``2015-08-04 00:00:00``, pay times with the clock (``2025-01-11 09:32:05``), months as
  ``202204`` (the period, the start of an allowance);
* amounts of the payment table in 分 (fen, integer: 18300 = 183.00 yuan); other amounts in yuan;
* codes for enumerations: sex ``1``/``2`` (GB/T 2261.1), the payment status ``1`` (成功) /
  ``0`` (失败), the item as a short code (``DB`` 城乡低保金, ``TK`` 特困供养金, ``GL`` 高龄津贴,
  ``GD`` 耕地地力保护补贴, ``CJ`` 残疾人两项补贴, ``YL`` 养老金), the assistance kind likewise
  (``DB`` 城乡低保, ``TK`` 特困供养); every code is in the dictionary.

The people, cases, traps and damaged cells are those of the default county (a short row stays
short); truth rows follow the rows into the new files; the deleted versions have no truth row.
"""

from __future__ import annotations

import csv
import re
from typing import Any

from crossmatch.synth.layouts import (
    OutRow,
    Render,
    Table,
    _payment_tables,
    parse_amount,
    parse_date,
    parse_period,
)

NULL = "\\N"
DELETED_SHARE = 0.02
ITEMS = {"城乡低保金": "DB", "特困供养金": "TK", "高龄津贴": "GL", "耕地地力保护补贴": "GD",
         "残疾人两项补贴": "CJ", "养老金": "YL"}  # fmt: skip
KINDS = {"城乡低保": "DB", "特困供养": "TK"}
SEX = {"男": "1", "女": "2"}
STATUS = {"成功": "1", "失败": "0"}

# (default file, dump file, table's Chinese name, [(column, Chinese name, old header, kind)])
# kind: text, birth (YYYYMMDD), dt (a datetime at midnight), month (YYYYMM), sex, fen, item,
# kind (assistance kind), status
TABLES: list[tuple[str, str, str, list[tuple[str, str, str, str]]]] = [
    ("hukou/户籍人口信息.csv", "gongan/GA_HJRK.txt", "户籍人口信息", [
        ("HH", "户号", "户号", "text"), ("XM", "姓名", "姓名", "text"),
        ("GMSFHM", "公民身份号码", "公民身份号码", "text"), ("YHZGX", "与户主关系", "与户主关系", "text"),
        ("XB", "性别", "性别", "sex"), ("MZ", "民族", "民族", "text"), ("CSRQ", "出生日期", "出生日期", "birth"),
        ("HJDZ", "户籍地址", "户籍地址", "text"), ("XZQHDM", "行政区划代码", "行政区划代码", "text"),
        ("RYZT", "人员状态", "人员状态", "text"), ("ZXYY", "注销原因", "注销原因", "text"),
        ("ZXRQ", "注销日期", "注销日期", "dt"), ("FQGMSFHM", "父亲公民身份号码", "父亲公民身份号码", "text"),
        ("MQGMSFHM", "母亲公民身份号码", "母亲公民身份号码", "text")]),
    ("death/死亡人口信息.xlsx", "gongan/GA_SWRK.txt", "死亡人口信息", [
        ("XM", "姓名", "姓名", "text"), ("GMSFHM", "公民身份号码", "身份证号", "text"),
        ("SWRQ", "死亡日期", "死亡日期", "birth"), ("SWYY", "死亡原因", "死亡原因", "text"),
        ("SJLYDW", "数据来源单位", "数据来源单位", "text")]),
    ("police/机动车登记信息.csv", "gongan/GA_JDCDJ.txt", "机动车登记信息", [
        ("SYR", "机动车所有人", "机动车所有人", "text"), ("SFZMHM", "身份证明号码", "身份证明号码", "text"),
        ("HPHM", "号牌号码", "号牌号码", "text"), ("CLLX", "车辆类型", "车辆类型", "text"),
        ("SYXZ", "使用性质", "使用性质", "text"), ("CCDJRQ", "初次登记日期", "初次登记日期", "dt"),
        ("JDCZT", "机动车状态", "机动车状态", "text"), ("ZTBGRQ", "状态变更日期", "状态变更日期", "dt")]),
    ("death/火化信息.csv", "minzheng/MZ_HHXX.txt", "火化信息", [
        ("SZXM", "逝者姓名", "逝者姓名", "text"), ("ZJHM", "证件号码", "证件号码", "text"),
        ("HHRQ", "火化日期", "火化日期", "dt"), ("BYG", "殡仪馆", "殡仪馆", "text")]),
    ("marriage/婚姻登记信息.csv", "minzheng/MZ_HYDJ.txt", "婚姻登记信息", [
        ("DJLB", "登记类别", "登记类别", "text"), ("NFXM", "男方姓名", "男方姓名", "text"),
        ("NFSFZH", "男方身份证号", "男方身份证号", "text"), ("VFXM", "女方姓名", "女方姓名", "text"),
        ("VFSFZH", "女方身份证号", "女方身份证号", "text"), ("DJRQ", "登记日期", "登记日期", "dt"),
        ("DJJG", "登记机关", "登记机关", "text")]),
    ("civil/低保特困救助对象花名册.xlsx", "minzheng/MZ_DBTK_JZDX.txt", "城乡低保、特困供养救助对象", [
        ("JZLB", "救助类别", "救助类别", "kind"), ("JZZBH", "救助证编号", "救助证编号", "text"),
        ("SQRXM", "申请人姓名", "申请人姓名", "text"), ("SQRSFZH", "申请人身份证号", "申请人身份证号", "text"),
        ("CYXM", "成员姓名", "成员姓名", "text"), ("CYSFZH", "成员身份证号", "成员身份证号", "text"),
        ("YSQRGX", "与申请人关系", "与申请人关系", "text"), ("BZRS", "保障人数", "保障人数", "text"),
        ("YBZJE", "月保障金额(元)", "月保障金额", "text"), ("XZJD", "乡镇(街道)", "乡镇(街道)", "text"),
        ("CSQ", "村(社区)", "村(社区)", "text"), ("XZQHDM", "行政区划代码", "行政区划代码", "text"),
        ("JBR", "经办人", "经办人", "text"), ("SPR", "审批人", "审批人", "text"),
        ("JZKSRQ", "救助开始日期", "救助开始日期", "dt"), ("JZZZRQ", "救助终止日期", "救助终止日期", "dt")]),
    ("civil/高龄津贴发放名册.csv", "minzheng/MZ_GLJT.txt", "高龄津贴享受人员", [
        ("XM", "姓名", "姓名", "text"), ("SFZH", "身份证号", "身份证号", "text"), ("XB", "性别", "性别", "sex"),
        ("NL", "年龄", "年龄", "text"), ("CSQ", "村(社区)", "村(社区)", "text"),
        ("XZQHDM", "行政区划代码", "行政区划代码", "text"), ("YJTBZ", "月津贴标准(元)", "月津贴标准", "text"),
        ("KSXSNY", "开始享受年月", "开始享受年月", "month")]),
    ("civil/代领代管备案.csv", "minzheng/MZ_DLDGBA.txt", "代领代管备案", [
        ("SYRXM", "受益人姓名", "受益人姓名", "text"), ("SYRSFZH", "受益人身份证号", "受益人身份证号", "text"),
        ("DLRXM", "代领人姓名", "代领人姓名", "text"), ("DLRSFZH", "代领人身份证号", "代领人身份证号", "text"),
        ("DLZH", "代领账号", "代领账号", "text"), ("BARQ", "备案日期", "备案日期", "dt")]),
    ("finance/补贴标准.csv", "caizheng/CZ_BTBZ.txt", "补贴标准", [
        ("BTXM", "补贴项目", "补贴项目", "item"), ("SYQHDM", "适用区划代码", "适用区划代码", "text"),
        ("JFFS", "计发方式", "计发方式", "text"), ("BZRS", "保障人数", "保障人数", "text"),
        ("BZJE", "标准金额(元)", "标准金额", "text"), ("SXRQ", "生效日期", "生效日期", "dt"),
        ("SXRQ2", "失效日期", "失效日期", "dt")]),
    ("finance/财政供养人员信息.xlsx", "caizheng/CZ_CZGYRY.txt", "财政供养人员信息", [
        ("XM", "姓名", "姓名", "text"), ("SFZHM", "身份证号码", "身份证号码", "text"),
        ("GZDW", "工作单位", "工作单位", "text"), ("DWTYSHXYDM", "单位统一社会信用代码", "单位统一社会信用代码", "text"),
        ("GW", "岗位", "岗位", "text"), ("GWLB", "岗位类别", "岗位类别", "text"),
        ("RZRQ", "入职日期", "入职日期", "dt"), ("LZRQ", "离职日期", "离职日期", "dt")]),
    ("bank/代发账户信息.csv", "yinhang/YH_DFZH.txt", "代发账户信息", [
        ("ZH", "账号", "账号", "text"), ("HM", "户名", "户名", "text"), ("ZJHM", "证件号码", "证件号码", "text"),
        ("KHH", "开户行", "开户行", "text"), ("KHRQ", "开户日期", "开户日期", "dt"),
        ("XHRQ", "销户日期", "销户日期", "dt")]),
    ("housing/不动产登记信息.csv", "zhujian/BDC_DJXX.txt", "不动产登记信息", [
        ("QLR", "权利人", "权利人", "text"), ("ZJHM", "证件号码", "证件号码", "text"),
        ("BDCDYH", "不动产单元号", "不动产单元号", "text"), ("ZL", "坐落", "坐落", "text"),
        ("GHYT", "规划用途", "规划用途", "text"), ("JZMJ", "建筑面积(平方米)", "建筑面积", "text"),
        ("DJRQ", "登记日期", "登记日期", "dt"), ("ZXRQ", "注销日期", "注销日期", "dt"),
        ("GYR", "共有人", "共有人", "text"), ("GYRZJHM", "共有人证件号码", "共有人证件号码", "text")]),
    ("market/企业登记信息.csv", "shijian/SJ_QYDJ.txt", "企业登记信息", [
        ("TYSHXYDM", "统一社会信用代码", "统一社会信用代码", "text"), ("QYMC", "企业名称", "企业名称", "text"),
        ("FDDBR", "法定代表人", "法定代表人", "text"), ("FDDBRZJHM", "法定代表人证件号码", "法定代表人证件号码", "text"),
        ("ZCZB", "注册资本(万元)", "注册资本(万元)", "text"), ("DJZT", "登记状态", "登记状态", "text"),
        ("CLRQ", "成立日期", "成立日期", "dt"), ("ZXRQ", "注销日期", "注销日期", "dt")]),
    ("market/企业股东出资信息.csv", "shijian/SJ_GDCZ.txt", "企业股东出资信息", [
        ("TYSHXYDM", "统一社会信用代码", "统一社会信用代码", "text"), ("GDMC", "股东名称", "股东名称", "text"),
        ("GDZJHM", "股东证件号码", "股东证件号码", "text"), ("RJCZE", "认缴出资额(万元)", "认缴出资额(万元)", "text"),
        ("CZBL", "出资比例", "出资比例", "text")]),
    ("agriculture/土地承包经营权信息.csv", "nongye/NY_TDCB.txt", "土地承包经营权信息", [
        ("HTBH", "合同编号", "合同编号", "text"), ("CBFDBXM", "承包方代表姓名", "承包方代表姓名", "text"),
        ("CBFDBSFZH", "承包方代表身份证号", "承包方代表身份证号", "text"), ("CM", "村", "村", "text"),
        ("XZQHDM", "行政区划代码", "行政区划代码", "text"), ("CBDKS", "承包地块数", "承包地块数", "text"),
        ("CBMJ", "承包面积(亩)", "承包面积(亩)", "text")]),
    ("agriculture/耕地地力保护补贴发放清册.xlsx", "nongye/NY_GDDLBHBT.txt", "耕地地力保护补贴发放清册", [
        ("XM", "姓名", "姓名", "text"), ("SFZH", "身份证号", "身份证号", "text"), ("CM", "村", "村", "text"),
        ("XZQHDM", "行政区划代码", "行政区划代码", "text"), ("BTMJ", "补贴面积(亩)", "补贴面积(亩)", "text"),
        ("BTBZ", "补贴标准(元/亩)", "补贴标准(元/亩)", "text"), ("BTJE", "补贴金额(元)", "补贴金额", "text"),
        ("ND", "年度", "年度", "text")]),
    ("education/学校教职工信息.csv", "jiaoyu/JY_JZG.txt", "学校教职工信息", [
        ("XM", "姓名", "姓名", "text"), ("SFZH", "身份证号", "身份证号", "text"),
        ("XXMC", "学校名称", "学校名称", "text"), ("XXDM", "学校代码", "学校代码", "text"),
        ("ZW", "职务", "职务", "text")]),
    ("education/学校食堂采购合同.csv", "jiaoyu/JY_STCGHT.txt", "学校食堂采购合同", [
        ("HTBH", "合同编号", "合同编号", "text"), ("CGDW", "采购单位", "采购单位", "text"),
        ("CGDWDM", "采购单位代码", "采购单位代码", "text"), ("GYSMC", "供应商名称", "供应商名称", "text"),
        ("GYSTYSHXYDM", "供应商统一社会信用代码", "供应商统一社会信用代码", "text"),
        ("HTJE", "合同金额(元)", "合同金额", "text"), ("QDRQ", "签订日期", "签订日期", "dt")]),
    ("organization/村（社区）干部花名册.csv", "zuzhi/ZZ_CSQGB.txt", "村（社区）干部花名册", [
        ("XM", "姓名", "姓名", "text"), ("SFZH", "身份证号", "身份证号", "text"), ("XZ", "乡镇", "乡镇", "text"),
        ("CSQ", "村(社区)", "村(社区)", "text"), ("XZQHDM", "行政区划代码", "行政区划代码", "text"),
        ("ZW", "职务", "职务", "text"), ("RZKS", "任职开始", "任职开始", "dt"), ("RZJS", "任职结束", "任职结束", "dt")]),
    ("organization/村干部近亲属享受民生资金备案表.csv", "zuzhi/ZZ_JQSBA.txt", "村干部近亲属享受民生资金备案", [
        ("GBXM", "干部姓名", "干部姓名", "text"), ("GBSFZH", "干部身份证号", "干部身份证号", "text"),
        ("QSXM", "亲属姓名", "亲属姓名", "text"), ("QSSFZH", "亲属身份证号", "亲属身份证号", "text"),
        ("YGBGX", "与干部关系", "与干部关系", "text"), ("XSXM", "享受项目", "享受项目", "text"),
        ("BARQ", "备案日期", "备案日期", "dt")]),
]  # fmt: skip
PAYMENT_COLUMNS = [
    ("LSH", "发放流水号", "发放批次号", "text"), ("BTXM", "补贴项目", "补贴项目", "item"),
    ("SKRXM", "收款人姓名", "收款人姓名", "text"), ("SKRSFZH", "收款人身份证号", "收款人身份证号", "text"),
    ("SKZH", "收款账号(社保卡/银行账号)", "社保卡/银行账号", "text"), ("KHYH", "开户银行", "开户银行", "text"),
    ("FFJE", "发放金额", "发放金额", "fen"), ("SSQ", "所属期(年月)", "所属期", "period"),
    ("FFSJ", "发放时间", "发放日期", "clock"), ("FFZT", "发放状态", "发放状态", "status"),
    ("XZ", "乡镇", "乡镇", "text"), ("CM", "村", "村", "text"), ("XZQHDM", "行政区划代码", "行政区划代码", "text"),
]  # fmt: skip
PAYMENT_FILE = "caizheng/CZ_YKT_FFMX_2025.txt"
CODES = {
    "sex": "1 男；2 女（GB/T 2261.1）",
    "fen": "单位：分（整数，18300 即 183.00 元）",
    "item": "；".join(f"{v} {k}" for k, v in ITEMS.items()),
    "kind": "；".join(f"{v} {k}" for k, v in KINDS.items()),
    "status": "1 成功；0 失败",
    "birth": "YYYYMMDD",
    "dt": "YYYY-MM-DD HH:MM:SS",
    "clock": "YYYY-MM-DD HH:MM:SS（发放到账时间）",
    "month": "YYYYMM",
    "period": "YYYYMM",
}
_MONTH = re.compile(r"^(\d{4})(?:年|[-./])?(\d{1,2})月?$")


def _month(v: Any) -> str | None:
    m = _MONTH.match(str(v or "").strip())
    if m and 1 <= int(m[2]) <= 12:
        return f"{m[1]}{int(m[2]):02d}"
    return None


class _Cells:
    """Turns one default cell into the dump's, by the column's kind; a damaged cell passes."""

    def __init__(self, r: Render) -> None:
        self.r = r

    def __call__(self, v: Any, kind: str, key: tuple[Any, ...]) -> Any:
        if v is None or (isinstance(v, str) and v.strip() == ""):
            return NULL
        if kind in ("birth", "dt", "clock"):
            d = parse_date(v)
            if d is None:
                return v
            if kind == "birth":
                return f"{d:%Y%m%d}"
            if kind == "dt":
                return f"{d:%Y-%m-%d} 00:00:00"
            secs = int(self.r.u("clock", key) * 9 * 3600) + 8 * 3600  # office hours
            return f"{d:%Y-%m-%d} {secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}"
        if kind in ("month", "period"):
            return _month(v) or v
        if kind == "sex":
            return SEX.get(str(v), v)
        if kind == "status":
            return STATUS.get(str(v), v)
        if kind == "item":
            return ITEMS.get(str(v), v)
        if kind == "kind":
            return KINDS.get(str(v), v)
        if kind == "fen":
            x = parse_amount(v)
            return str(round(x * 100)) if x is not None else v
        return v


def _next_id(ids: list[int]) -> str:
    ids[0] += 1
    return str(ids[0])


def _columns(
    t: Table, cols: list[tuple[str, str, str, str]], cell: _Cells, ids: list[int]
) -> list[tuple[str, Any]]:
    """reshape() columns: ID first (``ids[0]`` counts), the table's columns, SCBZ and GXSJ."""
    out: list[tuple[str, Any]] = [("ID", lambda _c, _r: _next_id(ids))]
    for new, _cn, old, kind in cols:
        i = t.idx(old)
        out.append((new, lambda c, r, i=i, kind=kind: cell(c[i], kind, (t.rel, r, i))))
    out.append(("SCBZ", lambda _c, _r: "0"))
    out.append(("GXSJ", lambda c, r: _updated(cell.r, (t.rel, r))))
    return out


def _updated(r: Render, key: tuple[Any, ...]) -> str:
    secs = int(r.u("gxsj", key) * 4 * 3600)
    return f"2025-12-31 {22 + secs // 3600 % 2:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}"


def render_dump(r: Render) -> None:
    cell = _Cells(r)
    r.counts["soft-deleted payment versions (SCBZ=1)"] += 0
    dump: dict[str, Any] = {"delimiter": "|"}
    for old_rel, rel, _cn, cols in TABLES:
        t = r.table(old_rel)
        ids = [0]
        h, rows, ren = r.reshape(t, _columns(t, cols, cell, ids))
        r.write_csv(rel, h, rows, renames={**ren, **{o: n for n, _c, o, _k in cols}}, **dump)
    # payments: the year in one file, with earlier versions of some rows kept as deleted
    rows_all: list[OutRow] = []
    ren_all: dict[str, str] = {}
    header: list[str] = []
    ids = [0]
    for t in _payment_tables(r):
        ist = t.idx("发放状态")
        header, rows, ren = r.reshape(t, _columns(t, PAYMENT_COLUMNS, cell, ids))
        ren_all.update(ren)
        ren_all.update({o: n for n, _c, o, _k in PAYMENT_COLUMNS})
        for (cells, origins), (n, old) in zip(rows, t.rows, strict=True):
            ok = (
                len(old) == len(t.header)
                and old[ist] == "成功"
                and parse_amount(old[6])
                and parse_period(old[7])
            )
            if ok and r.u("deleted", t.rel, n) < DELETED_SHARE:
                ghost = list(cells)
                ids[0] += 1
                ghost[0], cells[0] = cells[0], str(ids[0])  # the older version has the lower ID
                fen = int(ghost[7])
                ghost[7] = str(
                    fen
                    + (1 if r.u("up", t.rel, n) < 0.5 else -1)
                    * 100
                    * (10 + int(r.u("by", t.rel, n) * 40))
                )
                ghost[-2] = "1"
                ghost[-1] = (
                    "2025-" + ghost[9][5:10] + " 08:00:00" if ghost[9] != NULL else ghost[-1]
                )
                rows_all.append((ghost, []))
                r.counts["soft-deleted payment versions (SCBZ=1)"] += 1
            rows_all.append((cells, origins))
    r.write_csv(PAYMENT_FILE, header, rows_all, renames=ren_all, **dump)
    _dictionary(r)


def _dictionary(r: Render) -> None:
    """``数据字典.csv`` beside raw/: every table's columns, their meaning, type and codes."""
    lines = [["表名", "表中文名", "字段名", "字段中文名", "说明"]]
    common = [("ID", "记录主键", "自增"), ("SCBZ", "删除标志", "0 正常；1 已删除（逻辑删除，保留历史版本）"),
              ("GXSJ", "更新时间", "YYYY-MM-DD HH:MM:SS")]  # fmt: skip
    tables = [(rel.rsplit("/", 1)[1][:-4], cn, cols) for _o, rel, cn, cols in TABLES]
    tables.append(
        (PAYMENT_FILE.rsplit("/", 1)[1][:-4], "惠民惠农一卡通资金发放明细", PAYMENT_COLUMNS)
    )
    for name, cn, cols in tables:
        lines.append([name, cn, "ID", common[0][1], common[0][2]])
        for new, ccn, _old, kind in cols:
            lines.append([name, cn, new, ccn, CODES.get(kind, "")])
        lines += [[name, cn, c, n, d] for c, n, d in common[1:]]
    lines.append(
        [
            "（全部）",
            "",
            "",
            "",
            "空值一律导出为 \\N；文件为 UTF-8 文本，字段以 | 分隔，首行为字段名",
        ]
    )
    with open(r.out / "数据字典.csv", "w", encoding="utf-8-sig", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(lines)


__all__ = ["NULL", "PAYMENT_FILE", "TABLES", "render_dump"]
