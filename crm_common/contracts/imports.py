"""The import file contract: which columns each kind of file has, and the header names they go by.

A column is matched to a field by its header, compared without case, spaces, underscores, hyphens or
dots, so ``Contact Email``, ``contact_email`` and ``CONTACT-EMAIL`` are one name; each field also
answers to common English and Chinese names (what Excel users already call their columns). A mapping
(``{"header in the file": "field"}``, ``"-"`` to ignore a column) settles anything else. Read by the
customers service, which runs imports, and by ``python -m crm import``, which tells kinds apart.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

IGNORE = "-"


@dataclass(frozen=True)
class Column:
    field: str
    aliases: tuple[str, ...] = ()
    required: bool = False


def _columns(*columns: Column) -> dict[str, Column]:
    return {c.field: c for c in columns}


TEMPLATES: dict[str, dict[str, Column]] = {
    "customers": _columns(
        Column("external_id", ("external id", "customer id", "customer no", "customer number", "customer code",
                               "account id", "客户编号", "客户编码", "客户id", "客户代码", "编号"), required=True),
        Column("company", ("company name", "customer name", "account", "account name", "organization",
                           "客户名称", "公司名称", "企业名称", "客户", "公司", "单位名称"), required=True),
        Column("industry", ("sector", "行业", "所属行业")),
        Column("source_channel", ("source", "lead source", "channel", "来源", "客户来源", "来源渠道", "渠道")),
        Column("owner", ("owner id", "owner email", "account owner", "sales rep", "rep", "salesperson",
                         "负责人", "销售", "业务员", "客户经理", "所属销售", "跟进人")),
        Column("team", ("sales team", "团队", "销售团队", "部门")),
        Column("tags", ("tag", "labels", "label", "标签")),
        Column("notes", ("note", "remarks", "comments", "description", "备注", "说明")),
        Column("contact_name", ("contact", "contact person", "联系人", "联系人姓名")),
        Column("contact_role", ("title", "job title", "position", "role", "职位", "职务")),
        Column("contact_phone", ("phone", "mobile", "telephone", "tel", "电话", "手机", "联系电话", "手机号")),
        Column("contact_email", ("email", "e-mail", "mail", "邮箱", "电子邮件", "电子邮箱")),
        Column("contact_is_decision_maker", ("decision maker", "is decision maker", "决策人", "是否决策人",
                                             "关键决策人")),
        Column("birthday", ("date of birth", "生日", "出生日期")),
        Column("contract_anniversary", ("contract date", "contract signed", "签约日期", "合同纪念日", "签约纪念日")),
        Column("created_at", ("created", "created on", "customer since", "创建时间", "创建日期", "建档日期")),
    ),
    "purchases": _columns(
        Column("customer", ("customer id", "customer external id", "external id", "customer no", "account id",
                            "客户编号", "客户编码", "客户id", "客户"), required=True),
        Column("amount", ("total", "value", "deal amount", "order amount", "price", "金额", "成交金额", "订单金额",
                          "销售额", "合同金额"), required=True),
        Column("currency", ("币种", "货币")),
        Column("purchased_at", ("date", "purchase date", "order date", "purchased", "closed", "成交日期", "成交时间",
                                "购买日期", "下单日期", "日期"), required=True),
        Column("invoice_ref", ("invoice", "invoice no", "invoice number", "order no", "order id", "order number",
                               "发票号", "发票号码", "订单号", "单号")),
    ),
    "interactions": _columns(
        Column("customer", ("customer id", "customer external id", "external id", "customer no", "account id",
                            "客户编号", "客户编码", "客户id", "客户"), required=True),
        Column("rep", ("rep id", "rep email", "owner", "sales rep", "by", "跟进人", "负责人", "销售", "业务员")),
        Column("kind", ("type", "channel", "method", "跟进方式", "方式", "类型"), required=True),
        Column("outcome", ("result", "结果", "跟进结果"), required=True),
        Column("occurred_at", ("date", "time", "when", "occurred", "跟进时间", "跟进日期", "时间", "日期"),
               required=True),
        Column("summary", ("notes", "content", "details", "内容", "跟进内容", "摘要", "备注")),
        Column("satisfaction", ("rating", "满意度", "评分")),
    ),
    # the pipeline's dated moves (a deal's stage history): after the customers file, like the others
    "stages": _columns(
        Column("customer", ("customer id", "customer external id", "external id", "customer no", "account id",
                            "客户编号", "客户编码", "客户id", "客户"), required=True),
        Column("stage", ("pipeline stage", "deal stage", "sales stage", "status", "阶段", "销售阶段", "商机阶段"),
               required=True),
        Column("changed_at", ("date", "moved", "moved at", "stage date", "changed", "变更时间", "变更日期",
                              "阶段日期", "日期"), required=True),
    ),
}
KINDS = tuple(TEMPLATES)


def header_key(header: str) -> str:
    """Case, spaces, punctuation and a unit in brackets (金额(元), Amount (USD)) make no difference."""
    without_unit = re.sub(r"[(（][^)）]*[)）]\s*$", "", str(header).strip()) or str(header)
    return re.sub(r"[\s_\-.:：()（）]+", "", without_unit).casefold()


def _lookup(kind: str) -> dict[str, str]:
    names = {}
    for column in TEMPLATES[kind].values():
        for name in (column.field, *column.aliases):
            names.setdefault(header_key(name), column.field)
    return names


_LOOKUPS = {kind: _lookup(kind) for kind in KINDS}


@dataclass(frozen=True)
class HeaderMatch:
    kind: str
    fields: dict[int, str]          # column index -> field
    ignored: tuple[str, ...]        # headers that name no field of the kind
    missing: tuple[str, ...]        # required fields no header names
    duplicated: tuple[str, ...]     # fields two headers name


def match_headers(headers: list[str], kind: str, mapping: dict[str, str] | None = None) -> HeaderMatch:
    """Which column holds which field of ``kind``; an explicit mapping wins over the built-in names."""
    mapping = {header_key(k): v for k, v in (mapping or {}).items()}
    lookup, fields, ignored, seen, duplicated = _LOOKUPS[kind], {}, [], set(), []
    for index, header in enumerate(headers):
        key = header_key(header)
        field = mapping.get(key, lookup.get(key))
        if not key or field in (None, IGNORE) or field not in TEMPLATES[kind]:
            if key:
                ignored.append(header)
            continue
        if field in seen:
            duplicated.append(field)
            continue
        seen.add(field)
        fields[index] = field
    missing = tuple(c.field for c in TEMPLATES[kind].values() if c.required and c.field not in seen)
    return HeaderMatch(kind, fields, tuple(ignored), missing, tuple(duplicated))


def detect_kind(headers: list[str], mapping: dict[str, str] | None = None) -> str:
    """The one kind whose required columns the headers all name; ValueError saying what to do otherwise."""
    matches = [match_headers(headers, kind, mapping) for kind in KINDS]
    complete = [m for m in matches if not m.missing]
    if not complete:
        best = min(matches, key=lambda m: len(m.missing))
        raise ValueError(f"cannot tell what the file holds from its headers; as {best.kind} it lacks "
                         f"{', '.join(best.missing)} (give the kind, or a mapping for those columns)")
    complete.sort(key=lambda m: -len(m.fields))
    if len(complete) > 1 and len(complete[0].fields) == len(complete[1].fields):
        raise ValueError(f"the headers fit both {complete[0].kind} and {complete[1].kind}; give the kind")
    return complete[0].kind


def check_mapping(mapping: dict) -> dict[str, str]:
    """A mapping as read from a file or a request; ValueError naming the entry at fault."""
    if not isinstance(mapping, dict):
        raise ValueError("a mapping is an object of {\"header in the file\": \"field\"}")
    fields = {field for template in TEMPLATES.values() for field in template} | {IGNORE}
    for header, field in mapping.items():
        if not isinstance(header, str) or not header.strip() or len(header) > 200:
            raise ValueError(f"mapping key {header!r} is not a column header")
        if field not in fields:
            raise ValueError(f"mapping {header!r}: {field!r} is not a field; fields: {', '.join(sorted(fields))}")
    return mapping
