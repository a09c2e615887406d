"""crm_common.tabular: CSV in the encodings and delimiters people save, and .xlsx, read as numbered rows.

Every file here is written for real into tmp_path; row numbers are what a spreadsheet shows (header = 1).
"""
import io
import random
import zipfile
from datetime import date, datetime, time

import pytest
from openpyxl import Workbook

from crm_common import tabular
from crm_common.tabular import BadCell, Table, UnreadableFile, csv_text

CHINESE = "客户编号,客户名称,负责人\r\nC1,华为技术,张三\r\nC2,小米,李四\r\n"
CHINESE_HEADERS = ["客户编号", "客户名称", "负责人"]
CHINESE_ROWS = [(2, ["C1", "华为技术", "张三"]), (3, ["C2", "小米", "李四"])]


def write(tmp_path, data: bytes, name: str = "upload") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def read(path: str):
    table = Table(path)
    return table, list(table.rows())


# ---------------------------------------------------------------- encodings

@pytest.mark.parametrize("data,encoding", [
    (CHINESE.encode("utf-8"), "utf-8"),
    (b"\xef\xbb\xbf" + CHINESE.encode("utf-8"), "utf-8-sig"),      # Excel's "CSV UTF-8"
    (CHINESE.encode("gbk"), "gb18030"),                             # Chinese Excel's plain "CSV"
    (CHINESE.encode("gb18030"), "gb18030"),
    (CHINESE.encode("utf-16"), "utf-16"),                           # BOM + little endian
    (b"\xfe\xff" + CHINESE.encode("utf-16-be"), "utf-16"),          # BOM + big endian
], ids=["utf8", "utf8-bom", "gbk", "gb18030", "utf16-le", "utf16-be"])
def test_encodings_read_to_the_same_text(tmp_path, data, encoding):
    table, rows = read(write(tmp_path, data))
    assert table.format == "csv"
    assert table.encoding == encoding
    assert table.headers == CHINESE_HEADERS   # no BOM left on the first header
    assert rows == CHINESE_ROWS


def test_gb18030_four_byte_characters(tmp_path):
    # U+20000 is outside GBK; GB18030 encodes it in four bytes
    data = "客户编号,客户名称\nC1,\U00020000记\n".encode("gb18030")
    table, rows = read(write(tmp_path, data))
    assert table.encoding == "gb18030"
    assert rows == [(2, ["C1", "\U00020000记"])]


def test_utf8_character_cut_by_the_sample_boundary_is_still_utf8(tmp_path):
    head = "客户编号,客户名称\n".encode()
    filler = b"C1," + b"a" * (tabular.SAMPLE_BYTES - len(head) - 3 - 1)   # "华" (3 bytes) starts 1 byte before the cut
    data = head + filler + "华为\nC2,小米\n".encode()
    assert data[tabular.SAMPLE_BYTES - 1:tabular.SAMPLE_BYTES + 2] == "华".encode()
    table, rows = read(write(tmp_path, data))
    assert table.encoding == "utf-8"
    assert rows[0][1][1].endswith("华为")
    assert rows[1] == (3, ["C2", "小米"])


def test_undecodable_cell_after_the_sample_is_a_bad_cell_alone(tmp_path):
    line = b"C0,Acme,ok\n"
    count = tabular.SAMPLE_BYTES // len(line) + 10
    data = b"external_id,company,notes\n" + line * count + b"C1,Caf\xe9 Ltd,fine\n" + b"C2,Beta,ok\n"
    table, rows = read(write(tmp_path, data))
    assert table.encoding == "utf-8"
    number, cells = rows[-2]
    assert number == count + 2
    assert cells[0] == "C1" and cells[2] == "fine"
    assert isinstance(cells[1], BadCell)
    assert cells[1].shown == "Caf\ufffd Ltd" == str(cells[1])
    assert "utf-8" in cells[1].reason and "CSV UTF-8" in cells[1].reason
    assert rows[-1] == (count + 3, ["C2", "Beta", "ok"])
    assert all(not isinstance(c, BadCell) for _, cells in rows[:-2] for c in cells)


@pytest.mark.parametrize("good,bad,shown", [
    # a UTF-8 file with Chinese text and one name pasted in from a GBK program
    ("客户编号,客户名称\nC1,华为\nC3,小米\n".encode(), "张三".encode("gbk"), ""),
    # the same with English headers: read as GB18030, every other row would be imported as mojibake
    ("external_id,company\nC1,华为技术\nC3,Café\n".encode(), "张三".encode("gbk"), ""),
    # a UTF-8 file with one Latin-1 é
    (b"external_id,company\nC1,Acme\nC3,Beta\n", b"Caf\xe9 Ltd", "Caf"),
], ids=["gbk-cell-in-utf8", "gbk-cell-in-utf8-english-headers", "latin1-cell-in-utf8"])
def test_stray_bytes_in_a_short_utf8_file_spoil_that_cell_only(tmp_path, good, bad, shown):
    # the same cell is a BadCell past the first 256 KiB (test above); in a short file it must be too, not
    # refuse the whole file or, worse, silently read every UTF-8 character as GB18030 mojibake
    header, first, third = good.decode().splitlines()
    data = f"{header}\n{first}\n".encode() + b"C2," + bad + b"\n" + f"{third}\n".encode()
    table, rows = read(write(tmp_path, data))
    assert table.encoding == "utf-8"
    assert table.headers == header.split(",")
    assert rows[0] == (2, first.split(","))
    assert rows[2] == (4, third.split(","))
    number, cells = rows[1]
    assert number == 3 and cells[0] == "C2"
    assert isinstance(cells[1], BadCell) and cells[1].shown.startswith(shown)
    assert "utf-8" in cells[1].reason.lower()


@pytest.mark.parametrize("data,message", [
    (b"", "empty"),
    (b"\r\n  \n\t\n", "empty"),
    (random.Random(0).randbytes(4096), "neither UTF-8 nor GBK"),
], ids=["zero-bytes", "whitespace", "binary"])
def test_unreadable_csv(tmp_path, data, message):
    with pytest.raises(UnreadableFile, match=message):
        Table(write(tmp_path, data))


@pytest.mark.parametrize("data", [b"external_id,company\n", b"external_id,company", b" external_id , company \r\n\r\n"])
def test_header_only_file_has_headers_and_no_rows(tmp_path, data):
    table, rows = read(write(tmp_path, data))
    assert table.headers == ["external_id", "company"]
    assert rows == []
    assert table.count() == 0


# ---------------------------------------------------------------- delimiters, quoting, numbering

@pytest.mark.parametrize("text,delimiter,rows", [
    ("external_id,company,notes\nC1,Acme,a;b|c\nC2,Beta,d;e\n", ",",
     [(2, ["C1", "Acme", "a;b|c"]), (3, ["C2", "Beta", "d;e"])]),
    ("external_id;company;amount\nC1;Acme;1,5\nC2;Beta;2,75\nC3;Gamma;3,25\n", ";",   # decimal commas
     [(2, ["C1", "Acme", "1,5"]), (3, ["C2", "Beta", "2,75"]), (4, ["C3", "Gamma", "3,25"])]),
    ("external_id\tcompany\tamount\nC1\tAcme, Inc\t1,200\nC2\tBeta\t3\n", "\t",
     [(2, ["C1", "Acme, Inc", "1,200"]), (3, ["C2", "Beta", "3"])]),
    ("external_id|company|tags\nC1|Acme|vip, north\nC2|Beta|a;b\n", "|",
     [(2, ["C1", "Acme", "vip, north"]), (3, ["C2", "Beta", "a;b"])]),
    ("external_id;company;tags\nC1;Acme;vip, north\nC2;Beta;a, b\n", ";",
     [(2, ["C1", "Acme", "vip, north"]), (3, ["C2", "Beta", "a, b"])]),
    ("external_id\nC1\nC2\n", ",", [(2, ["C1"]), (3, ["C2"])]),
], ids=["comma", "semicolon", "tab", "pipe", "semicolon-with-commas", "one-column"])
def test_delimiter_is_sniffed(tmp_path, text, delimiter, rows):
    table, read_rows = read(write(tmp_path, text.encode()))
    assert table.delimiter == delimiter
    assert read_rows == rows
    assert len(table.headers) == len(rows[0][1])


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_quoted_fields_hold_delimiters_and_newlines_and_rows_count_records(tmp_path, delimiter):
    d = delimiter
    text = (f"external_id{d}company{d}notes\r\n"
            f'C1{d}"Acme{d} Inc"{d}"first line\r\nsecond{d} line\r\nthird ""quoted"""\r\n'
            f"C2{d}Beta{d}plain\r\n"
            f"\r\n"
            f'C3{d}"Gamma"{d}"x\ny"\r\n')
    table, rows = read(write(tmp_path, text.encode()))
    assert table.delimiter == delimiter
    assert rows == [
        (2, ["C1", f"Acme{d} Inc", f'first line\r\nsecond{d} line\r\nthird "quoted"']),
        (3, ["C2", "Beta", "plain"]),        # record 3, though it is on physical line 5
        (5, ["C3", "Gamma", "x\ny"]),        # record 4 is blank, skipped, still counted
    ]
    assert table.count() == 3


def test_blank_rows_are_skipped_and_numbering_kept(tmp_path):
    text = "external_id;company;notes\nC1;Acme;x\n\n;;\n  ; \t ;  \n\nC2;Beta;\n;; y\n"
    table, rows = read(write(tmp_path, text.encode()))
    assert rows == [(2, ["C1", "Acme", "x"]), (7, ["C2", "Beta", ""]), (8, ["", "", " y"])]
    assert table.count() == 3


def test_cells_keep_their_spaces_but_headers_are_stripped(tmp_path):
    table, rows = read(write(tmp_path, b" external_id , company\nC1, Acme \n"))
    assert table.headers == ["external_id", "company"]
    assert rows == [(2, ["C1", " Acme "])]


# ---------------------------------------------------------------- .xlsx

def make_workbook(path, rows, extra_sheet=False):
    book = Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    if extra_sheet:
        book.create_sheet("Other").append(["not", "read"])
    book.save(path)
    return sheet


@pytest.fixture
def workbook(tmp_path):
    path = str(tmp_path / "customers.xlsx")
    book = Workbook()
    sheet = book.active
    sheet.append(["客户编号", "Company", "Amount", "Price", "Signed", "Day", "Time", "Calc", 2024])
    sheet.append(["C1", "Acme", 1200, 12.5, datetime(2024, 3, 5, 14, 30), date(2024, 3, 5), time(9, 30),
                  "plain", None])
    sheet.append([])                                              # row 3 blank
    sheet.append(["C2", "=hello", 0.1 + 0.2, 13800138000, None, None, None, "=A2*2", None])
    sheet["B4"].data_type = "s"                                   # text that starts with "=" is not a formula
    sheet["C4"] = "#N/A"                                          # openpyxl makes this an error cell
    sheet.append([None, None, None, None, None, None, None, None, None])    # row 5 blank
    sheet.append(["C3", "Gamma", -1, 0, None, None, None, None, "last"])
    book.create_sheet("Other").append(["not", "read"])
    book.save(path)
    return path


def test_xlsx_writes_a_real_error_cell(workbook):
    sheet_xml = zipfile.ZipFile(workbook).read("xl/worksheets/sheet1.xml").decode()
    assert '<c r="C4" t="e"><v>#N/A</v></c>' in sheet_xml
    assert "<f>A2*2</f>" in sheet_xml


def test_xlsx_rows_and_typed_cells(workbook):
    table, rows = read(workbook)
    assert table.format == "xlsx" and table.encoding is None and table.delimiter is None
    assert table.headers == ["客户编号", "Company", "Amount", "Price", "Signed", "Day", "Time", "Calc", "2024"]
    assert [number for number, _ in rows] == [2, 4, 6]
    assert rows[0][1] == ["C1", "Acme", 1200, 12.5, datetime(2024, 3, 5, 14, 30),
                          datetime(2024, 3, 5), "09:30:00", "plain", None]   # a date cell reads as midnight
    assert rows[2][1] == ["C3", "Gamma", -1, 0, None, None, None, None, "last"]
    assert table.count() == 3


def test_xlsx_formula_and_error_cells_are_bad_cells_with_a_reason(workbook):
    _, rows = read(workbook)
    cells = rows[1][1]
    assert cells[0] == "C2"
    assert cells[1] == "=hello"                       # a text cell, kept
    assert cells[3] == 13800138000
    error, formula = cells[2], cells[7]
    assert error == BadCell("#N/A", "an Excel error cell (#N/A)")
    assert isinstance(formula, BadCell) and formula.shown == "=A2*2"
    assert "formula" in formula.reason and "Paste Special > Values" in formula.reason


def test_xlsx_only_the_first_sheet_is_read(tmp_path):
    path = str(tmp_path / "two.xlsx")
    make_workbook(path, [["external_id", "company"], ["C1", "Acme"]], extra_sheet=True)
    table, rows = read(path)
    assert table.headers == ["external_id", "company"]
    assert rows == [(2, ["C1", "Acme"])]


@pytest.mark.parametrize("name", ["upload", "export.csv", "Book1.XLSX"])
def test_xlsx_is_recognised_by_content_not_name(tmp_path, name):
    # the customers service stores an uploaded file as "<scratch>/upload", with no extension at all
    path = str(tmp_path / name)
    make_workbook(path, [["external_id"], ["C1"]])
    table, rows = read(path)
    assert table.format == "xlsx" and rows == [(2, ["C1"])]


def test_empty_workbook_has_no_header_row(tmp_path):
    path = str(tmp_path / "empty.xlsx")
    Workbook().save(path)
    with pytest.raises(UnreadableFile, match="no header row"):
        Table(path)


def _xlsx_bytes(rows) -> bytes:
    book = Workbook()
    for row in rows:
        book.active.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _rezip(data: bytes, member: str, change) -> bytes:
    source, out = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for name in source.namelist():
            content = source.read(name)
            target.writestr(name, change(content) if name == member else content)
    return out.getvalue()


def _flip_a_byte_of(data: bytes, member: str) -> bytes:
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo(member)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    damaged = bytearray(data)
    damaged[start + info.compress_size // 2] ^= 0x01
    return bytes(damaged)


def _foreign_zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("readme.txt", "not a workbook")
    return out.getvalue()


SHEET = "xl/worksheets/sheet1.xml"
GOOD = _xlsx_bytes([["external_id", "company"]] + [[f"C{i}", f"Company {i}"] for i in range(3000)])


@pytest.mark.parametrize("data", [
    GOOD[:len(GOOD) // 2],                                          # upload cut short: no central directory
    _foreign_zip(),                                                 # a zip, but not a workbook
    _flip_a_byte_of(GOOD, SHEET),                                   # the sheet's bytes fail their CRC
    _rezip(GOOD, SHEET, lambda xml: xml[:200]),                    # sheet XML cut inside the header row
    _rezip(GOOD, SHEET, lambda xml: xml[:int(len(xml) * 0.9)]),    # sheet XML cut after 2,000-odd rows
], ids=["truncated", "foreign-zip", "bad-crc", "xml-cut-early", "xml-cut-late"])
def test_damaged_xlsx_is_unreadable(tmp_path, data):
    # whether it shows on opening or part way through the rows, it is UnreadableFile (which an import job
    # turns into "failed: <reason>"), not a parser's own exception
    with pytest.raises(UnreadableFile):
        table = Table(write(tmp_path, data, "damaged.xlsx"))
        list(table.rows())


def test_good_workbook_used_above_reads_whole(tmp_path):
    table = Table(write(tmp_path, GOOD, "good.xlsx"))
    assert table.count() == 3000


# ---------------------------------------------------------------- reports

def test_csv_text_quotes_what_needs_quoting():
    assert csv_text([["row", "value"], [3, 'a,b "c"\nd'], [4, None]]) == \
        'row,value\r\n3,"a,b ""c""\nd"\r\n4,\r\n'
