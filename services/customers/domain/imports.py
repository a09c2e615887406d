"""Rules that turn a spreadsheet row into the API's own request body, naming each cell that cannot be used.

Values come as people type them into Excel: dates as 2024-03-05, 2024/3/5, 2024年3月5日, 05/03/2024 when
the day is plain, Excel serial numbers and real date cells; amounts with thousands separators, currency
signs and 元/万元; yes/no as 是/否; channel, kind and outcome in English or Chinese. The body that comes out
is validated by the same schemas as a request to the API, so a row is accepted exactly when the same data
typed in one by one would be.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from crm_common.contracts.fields import PIPELINE_STAGES
from crm_common.contracts.followups import INTERACTION_KINDS, OUTCOMES
from crm_common.tabular import BadCell

SOURCE_CHANNEL_WORDS = {
    "exhibition": ("exhibition", "trade show", "expo", "展会", "展览会", "会展"),
    "online": ("online", "website", "web", "internet", "网络", "线上", "官网", "网站"),
    "referral": ("referral", "referred", "word of mouth", "转介绍", "推荐", "介绍", "老客户介绍"),
    "cold_call": ("cold call", "cold_call", "outbound", "陌拜", "陌生拜访", "电话营销", "电销"),
    "partner": ("partner", "reseller", "合作伙伴", "渠道商", "代理商", "合作"),
    "advertising": ("advertising", "ads", "ad", "广告", "投放"),
    "event": ("event", "seminar", "webinar", "活动", "会议营销", "沙龙"),
    "other": ("other", "others", "其他", "其它"),
}
KIND_WORDS = {
    "call": ("call", "phone", "phone call", "电话", "通话", "电话沟通"),
    "message": ("message", "sms", "text", "wechat", "im", "短信", "微信", "消息", "信息"),
    "email": ("email", "e-mail", "mail", "邮件", "电子邮件"),
    "visit": ("visit", "on-site", "onsite", "拜访", "上门", "面访", "实地拜访"),
    "meeting": ("meeting", "video call", "会议", "会面", "视频会议"),
    "complaint": ("complaint", "投诉", "客诉"),
    "survey": ("survey", "feedback", "回访", "调查", "满意度调查", "问卷"),
}
OUTCOME_WORDS = {
    "reached": ("reached", "connected", "contacted", "已接通", "接通", "联系上", "已联系"),
    "no_answer": ("no answer", "no_answer", "no reply", "unreachable", "未接通", "无人接听", "未接", "没接"),
    "declined": ("declined", "refused", "rejected", "拒绝", "婉拒"),
    "positive": ("positive", "interested", "good", "积极", "有意向", "意向强", "满意"),
    "negative": ("negative", "not interested", "bad", "消极", "无意向", "不满意"),
    "neutral": ("neutral", "ok", "一般", "中性", "待定"),
    "resolved": ("resolved", "closed", "done", "已解决", "解决", "已处理"),
    "open": ("open", "pending", "unresolved", "待处理", "未解决", "处理中"),
}
STAGE_WORDS = {
    "first_contact": ("first contact", "lead", "new lead", "prospecting", "初次接触", "初步接触", "线索", "初访"),
    "needs_analysis": ("needs analysis", "qualification", "qualified", "discovery", "需求分析", "需求确认", "需求"),
    "proposal": ("proposal", "quote", "quotation", "negotiation", "方案", "报价", "方案报价", "商务谈判", "谈判"),
    "won": ("won", "closed won", "win", "deal", "赢单", "成交", "签约", "已成交"),
    "lost": ("lost", "closed lost", "lose", "输单", "丢单", "失败", "已丢单"),
}
assert set(KIND_WORDS) == set(INTERACTION_KINDS) and set(OUTCOME_WORDS) == set(OUTCOMES)
assert set(STAGE_WORDS) == set(PIPELINE_STAGES)

TRUE_WORDS = {"yes", "y", "true", "t", "1", "x", "✓", "√", "是", "对", "有"}
FALSE_WORDS = {"no", "n", "false", "f", "0", "", "否", "不是", "无"}
CURRENCY_SIGNS = {"¥": "CNY", "￥": "CNY", "元": "CNY", "万元": "CNY", "$": "USD", "€": "EUR", "£": "GBP"}
CURRENCY_NAMES = {"RMB": "CNY", "人民币": "CNY", "美元": "USD", "欧元": "EUR", "英镑": "GBP", "日元": "JPY"}
TAG_SEPARATORS = r"[,;，；、|]"
EXCEL_EPOCH = datetime(1899, 12, 30)
EXCEL_SERIALS = (20000, 80000)  # 1954 .. 2119: a five-digit number in a date column is a serial, not a year

_YMD = re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?"
                  r"(?:[ T]*(\d{1,2})[:：](\d{2})(?:[:：](\d{2})(?:\.\d+)?)?)?$")
_DMY = re.compile(r"^(\d{1,2})[-/.](\d{1,2})[-/.](\d{4})(?:[ T]+(\d{1,2}):(\d{2})(?::(\d{2}))?)?$")
_AMOUNT = re.compile(r"^(?P<code>[A-Za-z]{3})?\s*(?P<sign>[¥￥$€£])?\s*(?P<number>[-+]?[\d.,，\s]*\d)\s*"
                     r"(?P<unit>万元|万|元)?\s*(?P<code2>[A-Za-z]{3})?$")


class CellError(ValueError):
    """The reason a cell's value cannot be used."""


@dataclass(frozen=True)
class Problem:
    field: str
    value: str
    reason: str


def text(cell) -> str:
    """A cell as the text a person sees: Excel's 12345.0 is "12345", a date cell its ISO date."""
    if cell is None:
        return ""
    if isinstance(cell, bool):
        return "yes" if cell else "no"
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    if isinstance(cell, datetime):
        return cell.isoformat(sep=" ")
    if isinstance(cell, date):
        return cell.isoformat()
    return str(cell).strip()


def when(cell, zone: ZoneInfo) -> datetime:
    """An instant in UTC from a date or date-time cell; a date or time without offset is local to ``zone``."""
    if isinstance(cell, datetime):
        value = cell
    elif isinstance(cell, date):
        value = datetime(cell.year, cell.month, cell.day)
    elif isinstance(cell, (int, float)) and not isinstance(cell, bool):
        value = _serial(cell)
    else:
        value = _parse_when(text(cell))
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value.astimezone(timezone.utc)


def day(cell, zone: ZoneInfo) -> date:
    """A calendar date (birthdays, anniversaries): the date as written, no time zone involved."""
    if isinstance(cell, datetime):
        return cell.date()
    if isinstance(cell, date):
        return cell
    return when(cell, timezone.utc).date()


def _serial(number: float) -> datetime:
    if not EXCEL_SERIALS[0] <= number <= EXCEL_SERIALS[1]:
        raise CellError(f"{text(number)} is not a date; write it as YYYY-MM-DD")
    return EXCEL_EPOCH + timedelta(days=float(number))


def _parse_when(raw: str) -> datetime:
    if not raw:
        raise CellError("empty; a date is required")
    if re.fullmatch(r"\d{5}(\.\d+)?", raw):
        return _serial(float(raw))
    match = _YMD.match(raw)
    if match:
        y, m, d, hh, mm, ss = match.groups()
        return _build(int(y), int(m), int(d), hh, mm, ss, raw)
    match = _DMY.match(raw)
    if match:
        a, b, y, hh, mm, ss = match.groups()
        a, b = int(a), int(b)
        if a > 12 >= b:
            return _build(int(y), b, a, hh, mm, ss, raw)
        if b > 12 >= a:
            return _build(int(y), a, b, hh, mm, ss, raw)
        if a > 12 and b > 12:
            raise CellError(f"{raw} is not a date on the calendar")
        if a != b:
            raise CellError(f"{raw} could be {a}/{b} or {b}/{a} (day/month); write it as YYYY-MM-DD")
        return _build(int(y), a, a, hh, mm, ss, raw)
    try:
        return datetime.fromisoformat(raw)
    except ValueError:
        raise CellError(f"{raw} is not a date; write it as YYYY-MM-DD or YYYY-MM-DD HH:MM") from None


def _build(y, m, d, hh, mm, ss, raw) -> datetime:
    try:
        return datetime(y, m, d, int(hh or 0), int(mm or 0), int(ss or 0))
    except ValueError:
        raise CellError(f"{raw} is not a date on the calendar") from None


def amount(cell) -> tuple[Decimal, str | None]:
    """The amount and the currency its sign or code names (None when it names none)."""
    if isinstance(cell, (int, float)) and not isinstance(cell, bool):
        number, currency = Decimal(str(cell)), None
    else:
        raw = text(cell)
        match = _AMOUNT.match(raw)
        if not raw or not match:
            raise CellError(f"{raw or 'empty'} is not an amount; write a number such as 1234.50")
        try:
            number = Decimal(_plain_number(match["number"]))
        except InvalidOperation:
            raise CellError(f"{raw} is not an amount; write a number such as 1234.50") from None
        if match["unit"] in ("万元", "万"):
            number *= 10000
        code = match["code"] or match["code2"]
        currency = currency_code(code) if code else CURRENCY_SIGNS.get(match["sign"] or match["unit"] or "")
    number = number.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP) if number.is_finite() else number
    if not number.is_finite() or number <= 0:
        raise CellError(f"{text(cell)}: an amount must be more than 0")
    return number, currency


def currency_code(raw) -> str:
    """An ISO 4217 code as written, or the one a common name (RMB, 人民币) stands for."""
    word = text(raw).strip()
    return CURRENCY_NAMES.get(word.upper(), CURRENCY_NAMES.get(word, word.upper()))


def _plain_number(raw: str) -> str:
    """1,234.50 and 1.234,50 alike; a lone comma not followed by three digits is a decimal comma (50,5)."""
    number = re.sub(r"\s", "", raw).replace("，", ",")
    if re.fullmatch(r"[-+]?\d{1,3}(\.\d{3}){2,}", number):
        return number.replace(".", "")  # 1.234.567
    if "," in number and "." in number:
        if number.rfind(",") > number.rfind("."):
            return number.replace(".", "").replace(",", ".")
        return number.replace(",", "")
    parts = number.split(",")
    if len(parts) == 2 and len(parts[1]) != 3:
        return number.replace(",", ".")
    return number.replace(",", "")


def yes_no(cell) -> bool:
    word = text(cell).casefold()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise CellError(f"{text(cell)} is not yes or no")


def _word(raw: str) -> str:
    return re.sub(r"[\s_\-]+", " ", raw).strip().casefold()


def choice(cell, words: dict[str, tuple[str, ...]]) -> str:
    raw = text(cell)
    key = _word(raw)
    for value, names in words.items():
        if key == _word(value) or key in {_word(n) for n in names}:
            return value
    raise CellError(f"{raw or 'empty'} is not one of {', '.join(words)}")


def tags(cell) -> list[str]:
    return [t.strip() for t in re.split(TAG_SEPARATORS, text(cell)) if t.strip()]


def row_key(*parts) -> str:
    """A stable reference for a row with no id of its own, so importing the file again finds it."""
    return "import:" + hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:32]


class RowReader:
    """One row's cells by field; collects a Problem for each cell that cannot be used."""

    def __init__(self, cells: dict[str, object]):
        self.cells = cells
        self.problems: list[Problem] = []

    def has(self, field: str) -> bool:
        cell = self.cells.get(field)
        return cell is not None and text(cell) != ""

    def get(self, field: str, parse=text, required: bool = False):
        cell = self.cells.get(field)
        if isinstance(cell, BadCell):
            self.problems.append(Problem(field, cell.shown, cell.reason))
            return None
        if not self.has(field):
            if required:
                self.problems.append(Problem(field, "", "required; the cell is empty"))
            return None
        try:
            return parse(cell)
        except CellError as exc:
            self.problems.append(Problem(field, text(cell), str(exc)))
            return None

    def fail(self, field: str, reason: str) -> None:
        self.problems.append(Problem(field, text(self.cells.get(field)), reason))


def customer_body(row: RowReader, zone: ZoneInfo) -> dict:
    """A row of a customers file as a POST /v1/customers body (owner and team resolved by the caller)."""
    body = {"company": row.get("company", required=True)}
    for field in ("industry", "notes"):
        if row.has(field):
            body[field] = row.get(field)
    if row.has("source_channel"):
        body["source_channel"] = row.get("source_channel", lambda c: choice(c, SOURCE_CHANNEL_WORDS))
    if row.has("tags"):
        body["tags"] = row.get("tags", tags)
    if row.has("created_at"):
        created_at = row.get("created_at", lambda c: when(c, zone))
        body["created_at"] = created_at.isoformat() if created_at else None
    if row.has("contact_name") or any(row.has(f"contact_{f}") for f in ("role", "phone", "email",
                                                                          "is_decision_maker")):
        contact = {"name": row.get("contact_name", required=True),
                   "is_decision_maker": bool(row.get("contact_is_decision_maker", yes_no))}
        for field in ("role", "phone", "email"):
            if row.has(f"contact_{field}"):
                contact[field] = row.get(f"contact_{field}")
        body["contacts"] = [contact]
    dates = []
    for field in ("birthday", "contract_anniversary"):
        if row.has(field):
            value = row.get(field, lambda c: day(c, zone))
            if value is not None:
                dates.append({"kind": field, "date": value.isoformat(), "label": text(row.cells.get("contact_name"))
                              if field == "birthday" else ""})
    if dates:
        body["important_dates"] = dates
    return body


def purchase_body(row: RowReader, zone: ZoneInfo, base_currency: str) -> dict:
    """A row of a purchases file as a POST /v1/customers/{id}/purchases body; without an invoice number the
    reference is made from the row's content, so the same row imported twice is one purchase."""
    parsed = row.get("amount", amount, required=True)
    number, signed = parsed if parsed else (None, None)
    currency = row.get("currency", currency_code) or signed or base_currency
    purchased_at = row.get("purchased_at", lambda c: when(c, zone), required=True)
    body = {"amount": str(number) if number is not None else None, "currency": currency,
            "purchased_at": purchased_at.isoformat() if purchased_at else None}
    body["external_ref"] = row.get("invoice_ref") or row_key(text(row.cells.get("customer")), body["amount"],
                                                            currency, body["purchased_at"])
    return body


def stage_body(row: RowReader, zone: ZoneInfo) -> dict:
    """A row of a stages file as a POST /v1/customers/{id}/stage body: the move and when it happened."""
    changed_at = row.get("changed_at", lambda c: when(c, zone), required=True)
    return {"stage": row.get("stage", lambda c: choice(c, STAGE_WORDS), required=True),
            "changed_at": changed_at.isoformat() if changed_at else None}


def interaction_body(row: RowReader, zone: ZoneInfo) -> dict:
    """A row of an interactions file as a POST /v1/interactions body (customer and rep resolved by the caller)."""
    occurred_at = row.get("occurred_at", lambda c: when(c, zone), required=True)
    body = {"kind": row.get("kind", lambda c: choice(c, KIND_WORDS), required=True),
            "outcome": row.get("outcome", lambda c: choice(c, OUTCOME_WORDS), required=True),
            "occurred_at": occurred_at.isoformat() if occurred_at else None,
            "summary": row.get("summary") or ""}
    if row.has("satisfaction"):
        body["satisfaction"] = row.get("satisfaction", _satisfaction)
    return body


def _satisfaction(cell) -> int:
    try:
        number = float(text(cell))
    except ValueError:
        raise CellError(f"{text(cell)} is not a number from 1 to 5") from None
    if not number.is_integer() or not 1 <= number <= 5:
        raise CellError(f"{text(cell)} is not a whole number from 1 to 5")
    return int(number)
