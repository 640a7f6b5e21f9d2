import codecs
import re

import phonenumbers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.core.input.phone import InvalidNumber, normalize
from bot.core.input.recipients import (
    CsvError,
    PlaceholderError,
    Recipient,
    _fast_e164,
    check_placeholders,
    parse_csv,
    parse_pasted,
    placeholders,
    render,
)

E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


def numbers(result) -> list[str]:
    return [r.to for r in result.recipients]


# --------------------------------------------------------------------------- pasted


def test_pasted_separators_blank_lines_and_line_numbers() -> None:
    text = (
        "+1 617 555 1212, John Smith\n"
        "\n"
        "(212) 555-0100\tJane\n"
        "   \n"
        "415.555.0199; Smith, Ann\n"
        "not a number, Bob\n"
        "+44 20 7946 0958\n"
    )
    got = parse_pasted(text)
    assert numbers(got) == ["+16175551212", "+12125550100", "+14155550199", "+442079460958"]
    assert [r.line for r in got.recipients] == [1, 3, 5, 7]
    assert [r.name for r in got.recipients] == ["John Smith", "Jane", "Smith, Ann", None]
    assert got.total_rows == 5
    assert len(got.problems) == 1
    problem = got.problems[0]
    assert (problem.line, problem.raw) == (6, "not a number, Bob")
    assert "'not a number' is not a phone number" in problem.reason
    assert got.columns == ["to", "name"]


def test_pasted_header_line_skipped_and_name_without_separator() -> None:
    got = parse_pasted("to,name\n+1 617 555 1212 John Smith\n")
    assert numbers(got) == ["+16175551212"]
    assert got.recipients[0].name == "John Smith"
    assert got.recipients[0].line == 2
    assert got.problems == []


def test_pasted_duplicates_compare_normalised_numbers() -> None:
    text = "+1 617 555 1212, First\n(617) 555-1212, Second\n16175551212\n+1 212 555 0100"
    got = parse_pasted(text)
    assert numbers(got) == ["+16175551212", "+12125550100"]
    assert got.recipients[0].name == "First"  # first occurrence wins
    assert got.duplicates_removed == 2
    kept = parse_pasted(text, allow_duplicates=True)
    assert numbers(kept) == ["+16175551212"] * 3 + ["+12125550100"]
    assert kept.duplicates_removed == 0


def test_pasted_default_region() -> None:
    got = parse_pasted("020 7946 0958\n07911 123456", default_region="GB")
    assert numbers(got) == ["+442079460958", "+447911123456"]


def test_pasted_raw_truncated_to_80() -> None:
    got = parse_pasted("x" * 200)
    assert len(got.problems[0].raw) == 80
    assert got.problems[0].raw.endswith("…")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.one_of(
            st.text(max_size=60),
            st.from_regex(r"\+?[0-9 ()\-.]{0,20}([,;\t].{0,10})?", fullmatch=True),
            st.sampled_from(["+16175551212", "(617) 555-1212, Bob", "to,name", "+44 7911 123456;X"]),
        ),
        max_size=8,
    ).map("\n".join)
)
def test_parse_pasted_never_raises_and_outputs_valid_e164(text: str) -> None:
    got = parse_pasted(text)
    for r in got.recipients:
        assert E164.match(r.to), r.to
        assert phonenumbers.is_valid_number(phonenumbers.parse(r.to, None))
    assert len(got.recipients) + len(got.problems) + got.duplicates_removed == got.total_rows
    assert len(set(numbers(got))) == len(got.recipients)


# --------------------------------------------------------------------------- CSV


def test_csv_basic_with_bom_crlf_whitespace_and_fields() -> None:
    data = codecs.BOM_UTF8 + (
        b"To , Name, First Name ,City\r\n"
        b" +1 617 555 1212 , John Smith , John, Boston \r\n"
        b"\r\n"
        b"(212) 555-0100,Jane Doe,Jane,\r\n"
    )
    got = parse_csv(data)
    assert got.columns == ["to", "name", "first_name", "city"]
    assert numbers(got) == ["+16175551212", "+12125550100"]
    first, second = got.recipients
    assert first.name == "John Smith"
    assert first.fields == {"to": "+16175551212", "name": "John Smith", "first_name": "John", "city": "Boston"}
    assert first.line == 2
    assert second.line == 4  # the blank line still counts
    assert second.fields["city"] == ""
    assert got.total_rows == 2
    assert got.notes == []


@pytest.mark.parametrize("sep", [";", "\t"])
def test_csv_semicolon_and_tab_delimiters(sep: str) -> None:
    text = sep.join(["phone", "name", "note"]) + "\n" + sep.join(["+16175551212", "Ann", "a, b"]) + "\n"
    got = parse_csv(text)
    assert numbers(got) == ["+16175551212"]
    assert got.recipients[0].fields["note"] == "a, b"
    assert got.columns == ["to", "name", "note"]


def test_csv_quoted_fields_with_commas_and_newlines_keep_line_numbers() -> None:
    text = (
        "to,name,note\n"
        '+16175551212,"Smith, John","line one\nline two"\n'
        "bad number,Nobody,x\n"
        '"+1 (212) 555-0100","Doe, Jane","said ""hi"""\n'
    )
    got = parse_csv(text)
    assert numbers(got) == ["+16175551212", "+12125550100"]
    assert got.recipients[0].name == "Smith, John"
    assert got.recipients[0].fields["note"] == "line one\nline two"
    assert got.recipients[1].fields["note"] == 'said "hi"'
    assert [r.line for r in got.recipients] == [2, 5]
    assert [p.line for p in got.problems] == [4]


def test_csv_short_and_long_rows() -> None:
    text = "name,city,to\nAnn,Boston,+16175551212\nBob,NYC\nCat,LA,+12125550100,extra,cells\n"
    got = parse_csv(text)
    assert numbers(got) == ["+16175551212", "+12125550100"]
    assert len(got.problems) == 1
    assert got.problems[0].line == 3
    assert got.problems[0].reason == "No phone number in the 'to' column (the row has 2 fields, the header 3)."
    # Too few fields but `to` present: fine, the rest is empty.
    short = parse_csv("to,name,city\n+16175551212\n")
    assert short.recipients[0].fields == {"to": "+16175551212", "name": "", "city": ""}
    assert short.recipients[0].name is None


def test_csv_invalid_rows_reported_valid_rows_kept() -> None:
    rows = ["to,name"] + [f"+1617555{1200 + i:04d},P{i}" for i in range(10)]
    rows[3] = "12345,Short"
    rows[7] = ",Empty"
    got = parse_csv("\n".join(rows))
    assert len(got.recipients) == 8
    assert [(p.line, p.raw) for p in got.problems] == [(4, "12345,Short"), (8, ",Empty")]
    assert "not a valid phone number" in got.problems[0].reason
    assert got.total_rows == 10


def test_csv_duplicates() -> None:
    text = "to,name\n+16175551212,A\n617-555-1212,B\n+12125550100,C\n"
    got = parse_csv(text)
    assert [r.name for r in got.recipients] == ["A", "C"]
    assert got.duplicates_removed == 1
    assert len(parse_csv(text, allow_duplicates=True).recipients) == 3


def test_csv_missing_to_column_message() -> None:
    with pytest.raises(CsvError) as err:
        parse_csv("cell,first_name\n+16175551212,Ann\n")
    assert str(err.value) == (
        "The CSV has no 'to' column. Found columns: cell, first_name. Rename the phone number column "
        "to 'to' (phone, phone_number, number and mobile also work)."
    )


@pytest.mark.parametrize("header", ["TO", "Phone", "phone number", "Phone_Number", "Number", "MOBILE"])
def test_csv_phone_column_aliases(header: str) -> None:
    got = parse_csv(f"{header},name\n+16175551212,Ann\n")
    assert numbers(got) == ["+16175551212"]
    assert got.columns[0] == "to"


def test_csv_to_column_preferred_over_aliases() -> None:
    got = parse_csv("phone,to\n+12125550100,+16175551212\n")
    assert numbers(got) == ["+16175551212"]
    assert got.columns == ["phone", "to"]


def test_csv_without_header() -> None:
    with pytest.raises(CsvError, match="looks like a recipient, not a header"):
        parse_csv("+16175551212,Ann\n+12125550100,Bob\n")


@pytest.mark.parametrize("data", [b"", b"\n\n  \r\n", ""])
def test_csv_empty(data: bytes | str) -> None:
    with pytest.raises(CsvError, match="The file is empty"):
        parse_csv(data)


def test_csv_binary_file() -> None:
    with pytest.raises(CsvError) as err:
        parse_csv(b"to,name\n\x00\x01\x02\x03")
    assert str(err.value) == "The file looks like a binary file (found NUL bytes); upload a .csv export."
    with pytest.raises(CsvError, match="Excel workbook"):
        parse_csv(b"PK\x03\x04\x14\x00\x06\x00")


def test_csv_cp1252_fallback_with_note() -> None:
    data = "to,name\n+16175551212,José\n".encode("cp1252")
    got = parse_csv(data)
    assert got.recipients[0].name == "José"
    assert len(got.notes) == 1
    assert "isn't UTF-8" in got.notes[0] and "read as Windows-1252" in got.notes[0]


def test_csv_utf16_excel_unicode_text() -> None:
    data = codecs.BOM_UTF16_LE + "to\tname\r\n+16175551212\tZoë\r\n".encode("utf-16-le")
    got = parse_csv(data)
    assert numbers(got) == ["+16175551212"]
    assert got.recipients[0].name == "Zoë"


def test_csv_unterminated_quote_is_a_line_problem_not_a_crash() -> None:
    got = parse_csv('to,name\n+16175551212,"Ann\n')
    assert numbers(got) == ["+16175551212"]


def _rows(n: int) -> str:
    # Unique numbers (no cache hits), half E.164, half national format.
    lines = ["to,name,city"]
    for i in range(n):
        sub = f"{i % 10000:04d}"
        exchange = 200 + i // 10000
        if i % 2:
            lines.append(f"+1617{exchange}{sub},Person {i},Boston")
        else:
            lines.append(f"(212) {exchange}-{sub},Person {i},New York")
    return "\n".join(lines) + "\n"


def test_csv_max_rows() -> None:
    text = _rows(100_001)
    with pytest.raises(CsvError) as err:
        parse_csv(text)
    assert str(err.value) == (
        "The CSV has 100,001 rows; the limit is 100,000. Split it into files of at most 100,000 rows."
    )
    with pytest.raises(CsvError, match="The CSV has 3 rows; the limit is 2"):
        parse_csv(_rows(3), max_rows=2)


def test_csv_100k_rows_accepted() -> None:
    # Speed is measured in bench/bulk.py, not asserted here.
    got = parse_csv(_rows(100_000).encode())
    assert len(got.recipients) == 100_000
    assert got.problems == []
    assert got.recipients[-1].line == 100_001


# --------------------------------------------------------------------------- fast path == normalize


def _same_as_normalize(raw: str, region: str) -> None:
    fast = _fast_e164(raw, region)
    try:
        slow: str | None = normalize(raw, region)
    except InvalidNumber:
        slow = None
    if fast is not None:
        assert fast == slow, (raw, region)


def test_fast_path_agrees_with_normalize_on_every_regions_examples() -> None:
    formats = (
        phonenumbers.PhoneNumberFormat.E164,
        phonenumbers.PhoneNumberFormat.INTERNATIONAL,
        phonenumbers.PhoneNumberFormat.NATIONAL,
    )
    hits = 0
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in (phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.MOBILE):
            example = phonenumbers.example_number_for_type(region, kind)
            if example is None:
                continue
            for fmt in formats:
                raw = phonenumbers.format_number(example, fmt)
                for default in (region, "US", "GB"):
                    _same_as_normalize(raw, default)
                    hits += _fast_e164(raw, default) is not None
    assert hits > 1000  # the fast path is actually taken


_REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)
_FORMATS = (
    phonenumbers.PhoneNumberFormat.E164,
    phonenumbers.PhoneNumberFormat.INTERNATIONAL,
    phonenumbers.PhoneNumberFormat.NATIONAL,
)


@settings(max_examples=1500, deadline=None)
@given(
    st.sampled_from(_REGIONS),
    st.sampled_from([phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.MOBILE]),
    st.integers(min_value=0, max_value=9999),
    st.sampled_from(_FORMATS),
    st.sampled_from(["", "0", "1", "00", "011"]),
    st.sampled_from(["US", "CA", "GB", "DE", "IN", "AU", "NZ", "IT", "AR", "MX", "BR", "FR", "JP", "RU"]),
)
def test_fast_path_agrees_with_normalize_near_real_numbers(
    region: str, kind: int, tail: int, fmt: int, prefix: str, default: str
) -> None:
    # Real-looking numbers: a region's example with its last digits changed, in a random
    # layout, sometimes with a trunk/IDD/country prefix typed in front.
    example = phonenumbers.example_number_for_type(region, kind)
    if example is None:
        return
    raw = phonenumbers.format_number(example, fmt)
    digits = [i for i, ch in enumerate(raw) if ch.isdigit()]
    chars = list(raw)
    for pos, digit in zip(reversed(digits[-4:]), f"{tail:04d}"[::-1], strict=False):
        chars[pos] = digit
    raw = "".join(chars)
    if fmt == phonenumbers.PhoneNumberFormat.NATIONAL:
        raw = prefix + raw
    _same_as_normalize(raw, default)


@settings(max_examples=1000, deadline=None)
@given(
    st.sampled_from(["+", "", "1", "+1", "0", "+44", "44", "011", "00"]),
    st.from_regex(r"[0-9][0-9 ()\-.]{4,16}[0-9]", fullmatch=True),
    st.sampled_from(["US", "CA", "GB", "DE", "IN", "AU", "NZ", "IT", "AR", "MX", "BR", "FR"]),
)
def test_fast_path_agrees_with_normalize_on_random_input(prefix: str, body: str, region: str) -> None:
    _same_as_normalize(prefix + body, region)


# --------------------------------------------------------------------------- templates


def make(name: str | None = "Ann", **fields: str) -> Recipient:
    return Recipient(to="+16175551212", name=name, fields={"to": "+16175551212", **fields}, line=2)


def test_render_placeholders_case_insensitive_and_literal_braces() -> None:
    r = make(first_name="Ann", city="Boston")
    assert render("Hi {name} from {CITY}, {First_Name}!", r) == "Hi Ann from Boston, Ann!"
    assert render("Hi {First Name}", r) == "Hi Ann"
    assert render("Use {{code}} and }} or {{", r) == "Use {code} and } or {"
    assert render("Smile {:)} {", r) == "Smile {:)} {"
    assert render("Your number {to}", r) == "Your number +16175551212"


def test_render_missing_values_are_empty() -> None:
    assert render("Hi {name}!", make(name=None)) == "Hi !"
    assert render("City: {city}.", make(city="")) == "City: ."


def test_render_unknown_placeholder_lists_names_and_columns() -> None:
    with pytest.raises(PlaceholderError) as err:
        render("Hi {frist_name} {zip} {name}", make(first_name="Ann"))
    assert err.value.unknown == ["frist_name", "zip"]
    assert str(err.value) == (
        "Unknown placeholders {frist_name}, {zip}. Available: {name}, {to}, {first_name}. "
        "Write {{ and }} for literal braces."
    )
    assert isinstance(err.value, ValueError)


def test_placeholders_and_check() -> None:
    template = "Hi {Name}, {First Name} in {city} {{not_one}} {zip}"
    assert placeholders(template) == {"name", "first_name", "city", "zip"}
    assert check_placeholders(template, ["to", "First Name", "city"]) == ["zip"]
    assert check_placeholders("{to} {name}", []) == []


def test_render_with_parsed_csv_rows() -> None:
    got = parse_csv("Phone,Name,Appt Time\n+16175551212,Ann,9am\n+12125550100,,10am\n")
    template = "Hi {name}, see you at {appt time}"
    assert check_placeholders(template, got.columns) == []
    assert [render(template, r) for r in got.recipients] == ["Hi Ann, see you at 9am", "Hi , see you at 10am"]
