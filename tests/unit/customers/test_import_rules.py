"""Import rules: which column is which field, and how a spreadsheet's cells become an API request body.

Expected values are worked out by hand: Asia/Shanghai is UTC+8 all year, so a naive 2024-03-05 00:00 there
is 2024-03-04 16:00 UTC; Excel serial 45000 is 1899-12-30 + 45000 days = 2023-03-15.
"""
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from crm_common.contracts.imports import TEMPLATES, check_mapping, detect_kind, header_key, match_headers
from crm_common.tabular import BadCell
from services.customers.domain.imports import (
    KIND_WORDS, OUTCOME_WORDS, SOURCE_CHANNEL_WORDS, CellError, Problem, RowReader, amount, choice,
    customer_body, day, interaction_body, purchase_body, row_key, tags, text, when, yes_no,
)

WORDS = {"source": SOURCE_CHANNEL_WORDS, "kind": KIND_WORDS, "outcome": OUTCOME_WORDS}
SH = ZoneInfo("Asia/Shanghai")
NY = ZoneInfo("America/New_York")
UTC = timezone.utc
FORMULA = BadCell("=B2&C2", "a formula; paste the values instead (Paste Special > Values)")


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def problems_by_field(row):
    found = {p.field: (p.value, p.reason) for p in row.problems}
    assert len(found) == len(row.problems), f"a field reported twice: {row.problems}"
    return found


# ================================================================ headers

@pytest.mark.parametrize("header,key", [
    ("Contact Email", "contactemail"), ("CONTACT-EMAIL", "contactemail"), ("contact.email", "contactemail"),
    ("contact_email", "contactemail"), (" External \t ID: ", "externalid"), ("Invoice No. (EU)", "invoiceno"), ("金额(元)", "金额"),
    ("客户编号（必填）", "客户编号"), ("客户编号：", "客户编号"), ("Straße", "strasse"),
])
def test_header_key_ignores_case_spaces_and_punctuation(header, key):
    assert header_key(header) == key


@pytest.mark.parametrize("kind,header,field", [
    # customers
    ("customers", "external_id", "external_id"),
    ("customers", "External ID", "external_id"),
    ("customers", "EXTERNAL-ID", "external_id"),
    ("customers", " Customer  No. ", "external_id"),
    ("customers", "客户编号", "external_id"),
    ("customers", "编号", "external_id"),
    ("customers", "Company Name", "company"),
    ("customers", "客户名称", "company"),
    ("customers", "公司", "company"),
    ("customers", "客户", "company"),
    ("customers", "行业", "industry"),
    ("customers", "Sector", "industry"),
    ("customers", "来源", "source_channel"),
    ("customers", "Lead_Source", "source_channel"),
    ("customers", "Channel", "source_channel"),
    ("customers", "负责人", "owner"),
    ("customers", "Sales Rep", "owner"),
    ("customers", "销售团队", "team"),
    ("customers", "标签", "tags"),
    ("customers", "备注", "notes"),
    ("customers", "联系人", "contact_name"),
    ("customers", "联系人(姓名)", "contact_name"),
    ("customers", "职位", "contact_role"),
    ("customers", "手机号", "contact_phone"),
    ("customers", "E-Mail", "contact_email"),
    ("customers", "Contact Email", "contact_email"),
    ("customers", "是否决策人", "contact_is_decision_maker"),
    ("customers", "生日", "birthday"),
    ("customers", "签约日期", "contract_anniversary"),
    ("customers", "创建时间", "created_at"),
    # purchases
    ("purchases", "Customer ID", "customer"),
    ("purchases", "客户编号", "customer"),
    ("purchases", "客户", "customer"),
    ("purchases", "成交金额", "amount"),
    ("purchases", "Order Amount", "amount"),
    ("purchases", "币种", "currency"),
    ("purchases", "成交日期", "purchased_at"),
    ("purchases", "Order Date", "purchased_at"),
    ("purchases", "发票号", "invoice_ref"),
    ("purchases", "Invoice No.", "invoice_ref"),
    # interactions
    ("interactions", "客户编号", "customer"),
    ("interactions", "跟进人", "rep"),
    ("interactions", "负责人", "rep"),
    ("interactions", "跟进方式", "kind"),
    ("interactions", "Channel", "kind"),
    ("interactions", "Type", "kind"),
    ("interactions", "跟进结果", "outcome"),
    ("interactions", "Result", "outcome"),
    ("interactions", "跟进时间", "occurred_at"),
    ("interactions", "Date", "occurred_at"),
    ("interactions", "跟进内容", "summary"),
    ("interactions", "备注", "summary"),
    ("interactions", "满意度", "satisfaction"),
])
def test_header_names_a_field(kind, header, field):
    match = match_headers(["", header], kind)
    assert match.fields == {1: field}
    assert match.ignored == () and match.duplicated == ()


def test_every_field_answers_to_its_own_name_and_aliases():
    for kind, template in TEMPLATES.items():
        for column in template.values():
            for name in (column.field, *column.aliases):
                # within a kind no alias is shared by two fields, so each name finds its own field
                assert match_headers([name.upper()], kind).fields == {0: column.field}, (kind, name)


def test_a_customers_file_matched_column_by_column():
    match = match_headers(["客户编号", "客户名称", "行业", "Fax", "", "负责人", "  "], "customers")
    assert match.kind == "customers"
    assert match.fields == {0: "external_id", 1: "company", 2: "industry", 5: "owner"}
    assert match.ignored == ("Fax",)          # blank headers are neither fields nor ignored columns
    assert match.missing == ()
    assert match.duplicated == ()


@pytest.mark.parametrize("kind,headers,missing", [
    ("customers", ["Company"], ("external_id",)),
    ("customers", ["Industry"], ("external_id", "company")),
    ("purchases", ["客户编号", "发票号"], ("amount", "purchased_at")),
    ("interactions", ["客户编号", "跟进时间"], ("kind", "outcome")),
    ("interactions", [], ("customer", "kind", "outcome", "occurred_at")),
])
def test_missing_required_fields(kind, headers, missing):
    assert match_headers(headers, kind).missing == missing


def test_two_headers_for_one_field_keep_the_first_and_report_it():
    match = match_headers(["External ID", "客户编号", "Company", "Phone", "Mobile", "Email", "E-mail"], "customers")
    assert match.fields == {0: "external_id", 2: "company", 3: "contact_phone", 5: "contact_email"}
    assert match.duplicated == ("external_id", "contact_phone", "contact_email")
    assert match.ignored == ()


def test_mapping_names_columns_and_ignores_others():
    headers = ["Ref", "Name", "Email", "Phone", "Amount"]
    mapping = {" ref ": "external_id", "NAME": "company", "e_mail": "-", "Amount": "amount"}
    match = match_headers(headers, "customers", mapping)
    assert match.fields == {0: "external_id", 1: "company", 3: "contact_phone"}
    # "-" ignores a column that would have matched; a field of another kind cannot be used here
    assert match.ignored == ("Email", "Amount")
    assert match.missing == () and match.duplicated == ()


def test_mapping_wins_over_the_built_in_names():
    headers = ["Customer ID", "Company", "Account Name"]
    assert match_headers(headers, "customers").duplicated == ("company",)
    match = match_headers(headers, "customers", {"Company": "notes"})
    assert match.fields == {0: "external_id", 1: "notes", 2: "company"}
    assert match.duplicated == ()
    match = match_headers(headers, "customers", {"account-name": "-"})
    assert match.fields == {0: "external_id", 1: "company"}
    assert match.ignored == ("Account Name",)


@pytest.mark.parametrize("headers,mapping,kind", [
    (["客户编号", "客户名称", "行业", "负责人"], None, "customers"),
    (["External ID", "Company Name", "Contact", "Phone"], None, "customers"),
    (["Customer ID", "Amount", "Order Date", "Invoice No"], None, "purchases"),
    (["客户编号", "成交金额", "成交日期", "币种"], None, "purchases"),
    (["客户编号", "跟进方式", "跟进结果", "跟进时间", "跟进内容"], None, "interactions"),
    (["Customer ID", "Type", "Result", "Date"], None, "interactions"),
    # both complete: the kind that names more of the columns
    (["Customer ID", "Amount", "Date", "Type", "Result"], None, "interactions"),
    (["Customer ID", "Company", "Industry", "Notes", "Amount", "Date"], None, "customers"),
    (["Ref", "Name"], {"Ref": "external_id", "Name": "company"}, "customers"),
])
def test_detect_kind(headers, mapping, kind):
    assert detect_kind(headers, mapping) == kind


@pytest.mark.parametrize("headers,message", [
    (["foo", "bar"], "cannot tell what the file holds from its headers; as customers it lacks external_id, "
                     "company (give the kind, or a mapping for those columns)"),
    (["Amount", "Date"], "cannot tell what the file holds from its headers; as purchases it lacks customer "
                         "(give the kind, or a mapping for those columns)"),
    (["Customer ID", "Company", "Industry", "Amount", "Date"],
     "the headers fit both customers and purchases; give the kind"),
])
def test_detect_kind_refuses_with_a_reason(headers, message):
    with pytest.raises(ValueError) as exc:
        detect_kind(headers)
    assert str(exc.value) == message


def test_check_mapping():
    good = {"Ref": "external_id", "Fax": "-", "Betrag": "amount"}
    assert check_mapping(good) is good
    with pytest.raises(ValueError, match="is an object"):
        check_mapping([["Ref", "external_id"]])
    for header in ("", "   ", "x" * 201, 3):
        with pytest.raises(ValueError, match="is not a column header"):
            check_mapping({header: "company"})
    with pytest.raises(ValueError, match="'Ref': 'customer_number' is not a field"):
        check_mapping({"Ref": "customer_number"})


# ================================================================ cells

@pytest.mark.parametrize("cell,shown", [
    (None, ""), ("  Acme  ", "Acme"), (True, "yes"), (False, "no"), (12345.0, "12345"), (12.5, "12.5"),
    (13800138000, "13800138000"), (datetime(2024, 3, 5, 14, 30), "2024-03-05 14:30:00"),
    (date(2024, 3, 5), "2024-03-05"), (FORMULA, "=B2&C2"),
])
def test_text(cell, shown):
    assert text(cell) == shown


@pytest.mark.parametrize("cell,expected", [
    ("2024-03-05", utc(2024, 3, 4, 16)),
    ("2024-3-5", utc(2024, 3, 4, 16)),
    ("2024-03-05 14:30", utc(2024, 3, 5, 6, 30)),
    ("2024-03-05T14:30:15", utc(2024, 3, 5, 6, 30, 15)),
    ("2024-03-05T14:30:00+08:00", utc(2024, 3, 5, 6, 30)),     # an offset wins over the zone
    ("2024-03-05T14:30:00-05:00", utc(2024, 3, 5, 19, 30)),
    ("2024-03-05T06:30:00Z", utc(2024, 3, 5, 6, 30)),
    ("2024/3/5", utc(2024, 3, 4, 16)),
    ("2024/03/05 9:05", utc(2024, 3, 5, 1, 5)),
    ("2024.3.5", utc(2024, 3, 4, 16)),
    ("2024年3月5日", utc(2024, 3, 4, 16)),
    ("2024 年 3 月 5 日", utc(2024, 3, 4, 16)),
    ("2024年3月5日 14:30", utc(2024, 3, 5, 6, 30)),
    ("2024年03月05日 14：30：15", utc(2024, 3, 5, 6, 30, 15)),  # full-width colons
    ("2024-02-29", utc(2024, 2, 28, 16)),                       # a leap day
    ("25/03/2024", utc(2024, 3, 24, 16)),                       # 25 cannot be a month: day first
    ("03/25/2024", utc(2024, 3, 24, 16)),                       # month first
    ("25.03.2024", utc(2024, 3, 24, 16)),
    ("25-03-2024 14:30", utc(2024, 3, 25, 6, 30)),
    ("05/05/2024", utc(2024, 5, 4, 16)),                        # the same either way round
    ("20240305", utc(2024, 3, 4, 16)),
    (45000, utc(2023, 3, 14, 16)),                              # Excel serial: 2023-03-15 00:00 local
    ("45000", utc(2023, 3, 14, 16)),
    (45000.5, utc(2023, 3, 15, 4)),                             # noon local
    ("45000.75", utc(2023, 3, 15, 10)),                         # 18:00 local
    (datetime(2024, 3, 5, 14, 30), utc(2024, 3, 5, 6, 30)),     # a date-time cell, naive: local
    (datetime(2024, 3, 5, 14, 30, tzinfo=UTC), utc(2024, 3, 5, 14, 30)),
    (datetime(2024, 3, 5, 14, 30, tzinfo=timezone(timedelta(hours=8))), utc(2024, 3, 5, 6, 30)),
    (date(2024, 3, 5), utc(2024, 3, 4, 16)),                    # a date cell: local midnight
])
def test_when_in_shanghai(cell, expected):
    got = when(cell, SH)
    assert got == expected
    assert got.utcoffset() == timedelta(0)


@pytest.mark.parametrize("cell,zone,expected", [
    ("2024-03-05", UTC, utc(2024, 3, 5)),
    ("2024-07-01 12:00", NY, utc(2024, 7, 1, 16)),              # EDT, UTC-4
    ("2024-01-15 12:00", NY, utc(2024, 1, 15, 17)),             # EST, UTC-5
])
def test_when_uses_the_zone_rules_of_the_day(cell, zone, expected):
    assert when(cell, zone) == expected


@pytest.mark.parametrize("cell,reason", [
    ("05/03/2024", "05/03/2024 could be 5/3 or 3/5 (day/month); write it as YYYY-MM-DD"),
    ("03/05/2024 10:00", "03/05/2024 10:00 could be 3/5 or 5/3 (day/month); write it as YYYY-MM-DD"),
    ("2024-02-30", "2024-02-30 is not a date on the calendar"),
    ("2023-02-29", "2023-02-29 is not a date on the calendar"),
    ("2024-13-01", "2024-13-01 is not a date on the calendar"),
    ("31/04/2024", "31/04/2024 is not a date on the calendar"),
    ("2024年2月30日", "2024年2月30日 is not a date on the calendar"),
    ("2024-03-05 25:00", "2024-03-05 25:00 is not a date on the calendar"),
    ("next tuesday", "next tuesday is not a date; write it as YYYY-MM-DD or YYYY-MM-DD HH:MM"),
    ("2024", "2024 is not a date; write it as YYYY-MM-DD or YYYY-MM-DD HH:MM"),
    ("", "empty; a date is required"),
    (None, "empty; a date is required"),
    (2024, "2024 is not a date; write it as YYYY-MM-DD"),      # a number outside Excel serials 20000..80000
    (12345, "12345 is not a date; write it as YYYY-MM-DD"),
    ("12345", "12345 is not a date; write it as YYYY-MM-DD"),
    (99999.0, "99999 is not a date; write it as YYYY-MM-DD"),
])
def test_when_refuses(cell, reason):
    with pytest.raises(CellError) as exc:
        when(cell, SH)
    assert str(exc.value) == reason


@pytest.mark.parametrize("cell,expected", [
    ("1990-05-17", date(1990, 5, 17)),          # not moved to UTC: a birthday is the date written
    ("2024-03-05 23:30", date(2024, 3, 5)),
    ("2024年3月5日", date(2024, 3, 5)),
    ("17/05/1990", date(1990, 5, 17)),
    (45000, date(2023, 3, 15)),
    (datetime(1990, 5, 17), date(1990, 5, 17)),
    (datetime(2024, 3, 5, 23, 30), date(2024, 3, 5)),
    (date(1990, 5, 17), date(1990, 5, 17)),
])
def test_day_is_the_calendar_date_as_written(cell, expected):
    assert day(cell, SH) == expected


def test_day_refuses_what_when_refuses():
    with pytest.raises(CellError, match="could be 5/3 or 3/5"):
        day("05/03/2024", SH)


@pytest.mark.parametrize("cell,number,currency", [
    ("1,234.50", "1234.50", None),
    ("1.234,50", "1234.50", None),            # European: dot thousands, decimal comma
    ("1.234.567,89", "1234567.89", None),
    ("1 234,50", "1234.50", None),
    ("50,5", "50.50", None),                  # a comma not followed by three digits is a decimal comma
    ("0,5", "0.50", None),
    ("1,200", "1200.00", None),
    ("1,234,567", "1234567.00", None),
    ("1，200", "1200.00", None),               # full-width comma
    ("  300 ", "300.00", None),
    ("+5", "5.00", None),
    (".5", "0.50", None),
    ("2.675", "2.68", None),                  # half up
    ("0.005", "0.01", None),
    ("¥300", "300.00", "CNY"),
    ("￥300", "300.00", "CNY"),
    ("¥ 1,200.00", "1200.00", "CNY"),
    ("300元", "300.00", "CNY"),
    ("$5", "5.00", "USD"),
    ("€12,50", "12.50", "EUR"),
    ("£7", "7.00", "GBP"),
    ("3万", "30000.00", None),
    ("1.5万", "15000.00", None),
    ("3万元", "30000.00", "CNY"),             # 万元: ten thousand yuan
    ("2.5万元", "25000.00", "CNY"),
    ("USD 12", "12.00", "USD"),
    ("usd12", "12.00", "USD"),
    ("12 EUR", "12.00", "EUR"),
    ("CNY 1,200.00", "1200.00", "CNY"),
    (1200, "1200.00", None),                  # numbers from Excel
    (12.5, "12.50", None),
    (0.1 + 0.2, "0.30", None),                # 0.30000000000000004
    (2.675, "2.68", None),                    # the float's shortest text, not its binary value (2.67499...)
    (1e-2, "0.01", None),
])
def test_amount(cell, number, currency):
    got = amount(cell)
    assert got == (Decimal(number), currency)
    assert str(got[0]) == number


@pytest.mark.parametrize("cell,reason", [
    ("-5", "-5: an amount must be more than 0"),
    ("¥-5", "¥-5: an amount must be more than 0"),
    ("0", "0: an amount must be more than 0"),
    ("0.00", "0.00: an amount must be more than 0"),
    (0, "0: an amount must be more than 0"),
    (-1200, "-1200: an amount must be more than 0"),
    (0.0, "0: an amount must be more than 0"),
    ("abc", "abc is not an amount; write a number such as 1234.50"),
    ("12.34.56", "12.34.56 is not an amount; write a number such as 1234.50"),
    ("1e5", "1e5 is not an amount; write a number such as 1234.50"),
    ("5 apples", "5 apples is not an amount; write a number such as 1234.50"),
    ("", "empty is not an amount; write a number such as 1234.50"),
    (True, "yes is not an amount; write a number such as 1234.50"),
    (float("nan"), "nan: an amount must be more than 0"),
    (float("inf"), "inf: an amount must be more than 0"),
])
def test_amount_refuses(cell, reason):
    with pytest.raises(CellError) as exc:
        amount(cell)
    assert str(exc.value) == reason


@pytest.mark.parametrize("cell", ["yes", "Y", "TRUE", "t", "1", "x", "X", "✓", "√", "是", "对", "有",
                                  True, 1, 1.0])
def test_yes(cell):
    assert yes_no(cell) is True


@pytest.mark.parametrize("cell", ["no", "N", "False", "f", "0", "否", "不是", "无", "", None, False, 0, 0.0])
def test_no(cell):
    assert yes_no(cell) is False


@pytest.mark.parametrize("cell", ["maybe", "2", "yes please", 2])
def test_yes_no_refuses(cell):
    with pytest.raises(CellError, match=f"^{cell} is not yes or no$"):
        yes_no(cell)


@pytest.mark.parametrize("words,cell,value", [
    ("source", "Exhibition", "exhibition"),
    ("source", "Trade Show", "exhibition"),
    ("source", "trade-show", "exhibition"),
    ("source", "展会", "exhibition"),
    ("source", "Website", "online"),
    ("source", "官网", "online"),
    ("source", " 线上 ", "online"),
    ("source", "Word of mouth", "referral"),
    ("source", "转介绍", "referral"),
    ("source", "老客户介绍", "referral"),
    ("source", "cold call", "cold_call"),
    ("source", "Cold_Call", "cold_call"),
    ("source", "COLD-CALL", "cold_call"),
    ("source", "电销", "cold_call"),
    ("source", "陌拜", "cold_call"),
    ("source", "代理商", "partner"),
    ("source", "Ads", "advertising"),
    ("source", "广告", "advertising"),
    ("source", "Webinar", "event"),
    ("source", "活动", "event"),
    ("source", "其它", "other"),
    ("kind", "Phone Call", "call"),
    ("kind", "电话", "call"),
    ("kind", "WeChat", "message"),
    ("kind", "微信", "message"),
    ("kind", "短信", "message"),
    ("kind", "Email", "email"),
    ("kind", "E-mail", "email"),
    ("kind", "邮件", "email"),
    ("kind", "On-site", "visit"),
    ("kind", "onsite", "visit"),
    ("kind", "拜访", "visit"),
    ("kind", "上门", "visit"),
    ("kind", "Video Call", "meeting"),
    ("kind", "会议", "meeting"),
    ("kind", "投诉", "complaint"),
    ("kind", "回访", "survey"),
    ("outcome", "Reached", "reached"),
    ("outcome", "已接通", "reached"),
    ("outcome", "No Answer", "no_answer"),
    ("outcome", "no_answer", "no_answer"),
    ("outcome", "NO-ANSWER", "no_answer"),
    ("outcome", "未接通", "no_answer"),
    ("outcome", "无人接听", "no_answer"),
    ("outcome", "拒绝", "declined"),
    ("outcome", "有意向", "positive"),
    ("outcome", "满意", "positive"),
    ("outcome", "Not Interested", "negative"),
    ("outcome", "不满意", "negative"),
    ("outcome", "OK", "neutral"),
    ("outcome", "一般", "neutral"),
    ("outcome", "已解决", "resolved"),
    ("outcome", "Pending", "open"),
    ("outcome", "待处理", "open"),
])
def test_choice(words, cell, value):
    assert choice(cell, WORDS[words]) == value


@pytest.mark.parametrize("words,value,name", [
    (words, value, name)
    for words, table in WORDS.items() for value, names in table.items() for name in (value, *names)
])
def test_every_listed_word_is_accepted_as_written_and_in_capitals(words, value, name):
    assert choice(name, WORDS[words]) == value
    assert choice(name.upper(), WORDS[words]) == value


def test_source_channel_words_cover_the_api_channels():
    from services.customers.schemas import SOURCE_CHANNELS
    assert set(SOURCE_CHANNEL_WORDS) == set(SOURCE_CHANNELS)


@pytest.mark.parametrize("words,cell,reason", [
    ("kind", "Carrier pigeon", "Carrier pigeon is not one of call, message, email, visit, meeting, "
                                   "complaint, survey"),
    ("outcome", "电话", "电话 is not one of reached, no_answer, declined, positive, negative, neutral, "
                          "resolved, open"),
    ("source", "", "empty is not one of exhibition, online, referral, cold_call, partner, "
                               "advertising, event, other"),
])
def test_choice_refuses_unknown_words(words, cell, reason):
    with pytest.raises(CellError) as exc:
        choice(cell, WORDS[words])
    assert str(exc.value) == reason


@pytest.mark.parametrize("cell,expected", [
    ("vip, north;华东，重点；A、B|C", ["vip", "north", "华东", "重点", "A", "B", "C"]),
    ("  single  ", ["single"]),
    ("a,,b; ;", ["a", "b"]),
    (" , ; ", []),
    (None, []),
    (12345.0, ["12345"]),
])
def test_tags(cell, expected):
    assert tags(cell) == expected


def test_row_key_is_stable_and_tells_rows_apart():
    # sha256("C1" + "\x1f" + "1234.50"), first 32 hex digits: the key a re-import must find again
    assert row_key("C1", "1234.50") == "import:b1b4ef059552366acb503449d91d585b"
    assert row_key("C1", "1234.50") == row_key("C1", "1234.50")
    keys = {row_key("C1", "1234.50"), row_key("C2", "1234.50"), row_key("C1", "1234.51"),
            row_key("1234.50", "C1"), row_key("C1", "1234.50", None), row_key("C1")}
    assert len(keys) == 6
    assert all(k.startswith("import:") and len(k) == 39 for k in keys)


# ================================================================ RowReader

def test_row_reader_get():
    row = RowReader({"a": "  x ", "blank": "   ", "none": None, "bad": FORMULA, "date": "2024-02-30", "zero": 0})
    assert row.get("a") == "x"
    assert row.get("zero") == "0" and row.has("zero")               # 0 is a value, not an empty cell
    assert row.get("blank") is None and row.get("none") is None and row.get("absent") is None
    assert not row.has("blank") and not row.has("none") and not row.has("absent")
    assert row.problems == []
    assert row.get("blank", required=True) is None
    assert row.get("bad") is None
    assert row.get("date", lambda c: when(c, SH)) is None
    row.fail("a", "no rep with id or e-mail x in the directory")
    assert row.problems == [
        Problem("blank", "", "required; the cell is empty"),
        Problem("bad", "=B2&C2", FORMULA.reason),                       # the BadCell's own reason
        Problem("date", "2024-02-30", "2024-02-30 is not a date on the calendar"),
        Problem("a", "x", "no rep with id or e-mail x in the directory"),
    ]


# ================================================================ customers

FULL_CUSTOMER = {
    "external_id": "C1", "company": " Acme Ltd ", "industry": "制造业", "notes": "key account",
    "source_channel": "展会", "tags": "vip；华东", "created_at": "2024/3/5 09:00", "contact_name": "张三",
    "contact_role": "采购经理", "contact_phone": 13800138000, "contact_email": "zhang@example.com",
    "contact_is_decision_maker": "是", "birthday": "1990年5月17日", "contract_anniversary": 45000,
    "owner": "rep-1", "team": "east",
}


def test_customer_body_from_a_full_row():
    row = RowReader(dict(FULL_CUSTOMER))
    body = customer_body(row, SH)
    assert row.problems == []
    created_at = body.pop("created_at")
    assert datetime.fromisoformat(str(created_at)) == utc(2024, 3, 5, 1)   # 09:00 in Shanghai
    assert body == {
        "company": "Acme Ltd", "industry": "制造业", "notes": "key account", "source_channel": "exhibition",
        "tags": ["vip", "华东"],
        "contacts": [{"name": "张三", "is_decision_maker": True, "role": "采购经理", "phone": "13800138000",
                      "email": "zhang@example.com"}],
        "important_dates": [{"kind": "birthday", "date": "1990-05-17", "label": "张三"},
                            {"kind": "contract_anniversary", "date": "2023-03-15", "label": ""}],
    }


def test_customer_body_passes_the_api_schema():
    # the body goes through CustomerCreateSchema as a POST would; created_at must be what a client sends
    from services.customers.schemas import CustomerCreateSchema
    body = customer_body(RowReader(dict(FULL_CUSTOMER)), SH)
    data = CustomerCreateSchema().load({**body, "external_id": "C1", "owner_id": "rep-1", "team": "east"})
    assert data["created_at"] == utc(2024, 3, 5, 1)
    assert data["important_dates"][0]["date"] == date(1990, 5, 17)


def test_customer_body_minimal_row_has_only_the_company():
    row = RowReader({"external_id": "C1", "company": "Acme", "industry": "", "tags": None, "birthday": "  "})
    assert customer_body(row, SH) == {"company": "Acme"}
    assert row.problems == []


def test_customer_body_collects_a_problem_per_field():
    row = RowReader({
        "company": FORMULA, "source_channel": "carrier pigeon", "tags": "a,b", "created_at": "05/03/2024",
        "contact_phone": "123", "contact_is_decision_maker": "maybe", "birthday": "2024-02-30",
        "contract_anniversary": "someday",
    })
    body = customer_body(row, SH)
    assert problems_by_field(row) == {
        "company": ("=B2&C2", FORMULA.reason),
        "source_channel": ("carrier pigeon", "carrier pigeon is not one of exhibition, online, referral, "
                                             "cold_call, partner, advertising, event, other"),
        "created_at": ("05/03/2024", "05/03/2024 could be 5/3 or 3/5 (day/month); write it as YYYY-MM-DD"),
        "contact_name": ("", "required; the cell is empty"),
        "contact_is_decision_maker": ("maybe", "maybe is not yes or no"),
        "birthday": ("2024-02-30", "2024-02-30 is not a date on the calendar"),
        "contract_anniversary": ("someday", "someday is not a date; write it as YYYY-MM-DD or YYYY-MM-DD HH:MM"),
    }
    assert body["tags"] == ["a", "b"]
    assert body["contacts"] == [{"name": None, "is_decision_maker": False, "phone": "123"}]
    assert "important_dates" not in body


def test_customer_body_company_is_required():
    row = RowReader({"external_id": "C1", "company": "   "})
    assert customer_body(row, SH) == {"company": None}
    assert row.problems == [Problem("company", "", "required; the cell is empty")]


@pytest.mark.parametrize("field,value", [("contact_role", "CFO"), ("contact_phone", "021-5555 1234"),
                                         ("contact_email", "a@example.com")])
def test_contact_fields_need_a_contact_name(field, value):
    row = RowReader({"company": "Acme", field: value, "contact_is_decision_maker": "否"})
    body = customer_body(row, SH)
    assert row.problems == [Problem("contact_name", "", "required; the cell is empty")]
    assert body["contacts"] == [{"name": None, "is_decision_maker": False, field.removeprefix("contact_"): value}]


def test_contact_name_alone_is_a_contact_not_a_decision_maker():
    row = RowReader({"company": "Acme", "contact_name": "李四"})
    assert customer_body(row, SH)["contacts"] == [{"name": "李四", "is_decision_maker": False}]
    assert row.problems == []


@pytest.mark.parametrize("cells,dates", [
    ({"birthday": datetime(1990, 5, 17)}, [{"kind": "birthday", "date": "1990-05-17", "label": ""}]),
    ({"birthday": "17/05/1990", "contact_name": "王五"},
     [{"kind": "birthday", "date": "1990-05-17", "label": "王五"}]),
    ({"contract_anniversary": date(2021, 9, 1)},
     [{"kind": "contract_anniversary", "date": "2021-09-01", "label": ""}]),
    ({"contract_anniversary": "2021-09-01 23:30"},                    # the date written, not the UTC one
     [{"kind": "contract_anniversary", "date": "2021-09-01", "label": ""}]),
])
def test_important_dates(cells, dates):
    row = RowReader({"company": "Acme", **cells})
    assert customer_body(row, SH)["important_dates"] == dates
    assert row.problems == []


# ================================================================ purchases

@pytest.mark.parametrize("amount_cell,currency_cell,number,currency", [
    ("¥1,200", None, "1200.00", "CNY"),          # the sign names it when the column is blank
    ("$5", "", "5.00", "USD"),
    ("12 GBP", "  ", "12.00", "GBP"),
    ("3万元", None, "30000.00", "CNY"),
    ("1,234.50", None, "1234.50", "EUR"),        # nothing names it: the base currency
    (1200, None, "1200.00", "EUR"),
    ("300", " usd ", "300.00", "USD"),           # the currency column, upper-cased
    ("$5", "cny", "5.00", "CNY"),                # the column wins over the sign
])
def test_purchase_currency(amount_cell, currency_cell, number, currency):
    row = RowReader({"customer": "C1", "amount": amount_cell, "currency": currency_cell,
                     "purchased_at": "2024-03-05"})
    body = purchase_body(row, SH, "EUR")
    assert row.problems == []
    assert (body["amount"], body["currency"]) == (number, currency)


def test_purchase_body_with_an_invoice():
    row = RowReader({"customer": "C1", "amount": "1,234.50", "purchased_at": "2024-03-05 14:30",
                     "invoice_ref": 10023.0})
    assert purchase_body(row, SH, "EUR") == {
        "amount": "1234.50", "currency": "EUR", "purchased_at": "2024-03-05T06:30:00+00:00",
        "external_ref": "10023"}
    assert row.problems == []


def test_purchase_without_invoice_gets_a_content_key():
    cells = {"customer": "C1", "amount": "1,234.50", "purchased_at": "2024-03-05 14:30", "invoice_ref": " "}
    body = purchase_body(RowReader(cells), SH, "EUR")
    assert body["external_ref"] == row_key("C1", "1234.50", "EUR", "2024-03-05T06:30:00+00:00")
    # the same purchase typed another way is the same key
    again = {"customer": " C1 ", "amount": 1234.5, "purchased_at": datetime(2024, 3, 5, 14, 30)}
    assert purchase_body(RowReader(again), SH, "EUR")["external_ref"] == body["external_ref"]
    # any part changed is another purchase
    for change in ({"customer": "C2"}, {"amount": "1234.51"}, {"currency": "USD"},
                   {"purchased_at": "2024-03-05 14:31"}):
        assert purchase_body(RowReader({**cells, **change}), SH, "EUR")["external_ref"] != body["external_ref"]


def test_purchase_problems():
    row = RowReader({"customer": "C1", "amount": "-5", "purchased_at": BadCell("=TODAY()", "a formula; ...")})
    body = purchase_body(row, SH, "CNY")
    assert problems_by_field(row) == {"amount": ("-5", "-5: an amount must be more than 0"),
                                      "purchased_at": ("=TODAY()", "a formula; ...")}
    assert body["amount"] is None and body["purchased_at"] is None and body["currency"] == "CNY"


def test_purchase_required_fields():
    row = RowReader({"customer": "C1", "amount": "", "purchased_at": None})
    purchase_body(row, SH, "CNY")
    assert problems_by_field(row) == {"amount": ("", "required; the cell is empty"),
                                      "purchased_at": ("", "required; the cell is empty")}


def test_purchase_body_passes_the_api_schema():
    from services.customers.schemas import PurchaseSchema
    body = purchase_body(RowReader({"customer": "C1", "amount": "¥1,200", "purchased_at": "2024年3月5日"}),
                         SH, "EUR")
    data = PurchaseSchema().load(body)
    assert data["amount"] == Decimal("1200.00") and data["currency"] == "CNY"
    assert data["purchased_at"] == utc(2024, 3, 4, 16)


# ================================================================ interactions

def test_interaction_body_from_a_full_row():
    row = RowReader({"customer": "C1", "rep": "rep-1", "kind": "电话", "outcome": "已接通",
                     "occurred_at": "2024年3月5日 14:30", "summary": " 谈了续约 ", "satisfaction": 4.0})
    assert interaction_body(row, SH) == {"kind": "call", "outcome": "reached",
                                         "occurred_at": "2024-03-05T06:30:00+00:00", "summary": "谈了续约",
                                         "satisfaction": 4}
    assert row.problems == []


def test_interaction_body_minimal():
    row = RowReader({"customer": "C1", "kind": "Visit", "outcome": "No Answer", "occurred_at": 45000.5})
    assert interaction_body(row, SH) == {"kind": "visit", "outcome": "no_answer",
                                         "occurred_at": "2023-03-15T04:00:00+00:00", "summary": ""}


def test_interaction_required_fields():
    row = RowReader({"customer": "C1", "kind": "", "outcome": None})
    body = interaction_body(row, SH)
    assert problems_by_field(row) == {f: ("", "required; the cell is empty")
                                      for f in ("kind", "outcome", "occurred_at")}
    assert body == {"kind": None, "outcome": None, "occurred_at": None, "summary": ""}


def test_interaction_problems():
    row = RowReader({"customer": "C1", "kind": "pigeon", "outcome": FORMULA, "occurred_at": "05/03/2024",
                     "summary": BadCell("\ufffd", "bytes that are not utf-8 text; save the file as CSV UTF-8")})
    interaction_body(row, SH)
    assert problems_by_field(row) == {
        "kind": ("pigeon", "pigeon is not one of call, message, email, visit, meeting, complaint, survey"),
        "outcome": ("=B2&C2", FORMULA.reason),
        "occurred_at": ("05/03/2024", "05/03/2024 could be 5/3 or 3/5 (day/month); write it as YYYY-MM-DD"),
        "summary": ("\ufffd", "bytes that are not utf-8 text; save the file as CSV UTF-8"),
    }


@pytest.mark.parametrize("cell,score,reason", [
    ("1", 1, None), ("5", 5, None), (3, 3, None), (4.0, 4, None),
    ("4.5", None, "4.5 is not a whole number from 1 to 5"),
    ("0", None, "0 is not a whole number from 1 to 5"),
    ("6", None, "6 is not a whole number from 1 to 5"),
    ("好", None, "好 is not a number from 1 to 5"),
])
def test_interaction_satisfaction(cell, score, reason):
    row = RowReader({"kind": "call", "outcome": "reached", "occurred_at": "2024-03-05", "satisfaction": cell})
    body = interaction_body(row, SH)
    assert body["satisfaction"] == score
    assert row.problems == ([] if reason is None else [Problem("satisfaction", text(cell), reason)])


def test_interaction_body_passes_the_api_schema():
    from services.followups.schemas import InteractionSchema
    body = interaction_body(RowReader({"kind": "微信", "outcome": "有意向", "occurred_at": "2024-03-05 14:30",
                                       "satisfaction": "5"}), SH)
    data = InteractionSchema().load({**body, "customer_id": "cus_1"})
    assert (data["kind"], data["outcome"], data["satisfaction"]) == ("message", "positive", 5)
    assert data["occurred_at"] == utc(2024, 3, 5, 6, 30)
