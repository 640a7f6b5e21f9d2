"""Bulk recipient lists: pasted lines or an uploaded CSV -> E.164 recipients plus per-row problems.

A bad row never costs the good ones: it becomes a `RowProblem` with its line number and the
reason, and parsing goes on. Only whole-file problems (binary, no header, no phone column,
too many rows) raise `CsvError`.

Decisions:
- The phone column is `to` (any case), or else the first of `phone`, `phone_number`,
  `number`, `mobile` (after normalising header names as below).
- Header names are normalised for placeholders: stripped, lower-cased, runs of spaces and
  hyphens become `_` ("First Name" -> `first_name`). A blank header cell becomes
  `column_<n>`; a repeated name gets `_2`, `_3`.
- `Recipient.fields` holds every column of the row (missing cells as ""), with `to` set to
  the E.164 number; a `name` column also goes to `Recipient.name` (blank -> None). With no
  `name` column, `first_name` (else `full_name`) is the name. Of two `name` columns the
  first is the name (the second is `{name_2}`), and a note says so.
- CSV line numbers are physical lines of the file, header = line 1; a quoted field with
  newlines reports the line the record starts on. Pasted line numbers count every line.
- A pasted first line like `to,name` or `phone` is taken as a header and skipped.
- `total_rows` counts non-blank data rows; blank lines and rows of empty cells are skipped.
- Duplicates compare E.164 numbers; the first occurrence wins.
"""

from __future__ import annotations

import codecs
import csv
import gc
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Generic, NamedTuple, TypeVar, overload

from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata
from phonenumbers import phonenumberutil as _pnu
from pydantic import BaseModel, Field, SerializationInfo, field_serializer

from bot.core.input.phone import InvalidNumber, normalize

R = TypeVar("R")
T = TypeVar("T")


class CsvError(ValueError):
    """The whole file cannot be used; the message says why and what to do."""


class PlaceholderError(ValueError):
    """The template names placeholders the recipient list has no column for."""

    def __init__(self, unknown: list[str], available: list[str]) -> None:
        self.unknown = unknown
        self.available = available
        names = ", ".join(f"{{{u}}}" for u in unknown)
        label = "placeholder" if len(unknown) == 1 else "placeholders"
        avail = ", ".join(f"{{{a}}}" for a in available)
        super().__init__(
            f"Unknown {label} {names}. Available: {avail}. "
            "Write {{ and }} for literal braces."
        )


class Recipient(BaseModel):
    to: str  # E.164
    name: str | None = None
    fields: dict[str, str] = Field(default_factory=dict)
    line: int


class RowProblem(BaseModel):
    line: int
    raw: str  # at most 80 characters
    reason: str


class RecipientRow(NamedTuple):
    """One CSV recipient, compact: a tuple whose `columns` is shared by every row of a parse.

    It reads like a `Recipient` (`to`, `name`, `fields`, `line`) and `render` takes either;
    `recipient()` gives the pydantic model. 100,000 `Recipient`s with a dict each cost
    ~120 MB; these ~30 MB (`parse_csv`), and `iter_csv` keeps only the row being read.
    """

    line: int
    to: str  # E.164
    name: str | None
    values: tuple[str, ...]  # the cells in column order, the `to` cell replaced by `to`
    columns: tuple[str, ...]

    @property
    def fields(self) -> dict[str, str]:
        return dict(zip(self.columns, self.values, strict=False))

    def recipient(self) -> Recipient:
        return Recipient(to=self.to, name=self.name, fields=self.fields, line=self.line)


class _LazySequence(Sequence[T], Generic[R, T]):
    """A read-only Sequence over compact raw items; each model is built only when read."""

    __slots__ = ("raw",)

    def __init__(self, raw: list[R]) -> None:
        self.raw = raw

    def _build(self, raw: R) -> T:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.raw)

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> list[T]: ...

    def __getitem__(self, index: int | slice) -> T | list[T]:
        if isinstance(index, slice):
            return [self._build(r) for r in self.raw[index]]
        return self._build(self.raw[index])

    def __iter__(self) -> Iterator[T]:
        return (self._build(r) for r in self.raw)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, str):
            return len(other) == len(self) and all(a == b for a, b in zip(self, other, strict=False))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # unhashable like a list; typeshed has no None here


class LazyRecipients(_LazySequence[RecipientRow, Recipient]):
    """`RecipientList.recipients` of a parsed CSV: compact rows, a `Recipient` built on access."""

    __slots__ = ()

    @property
    def rows(self) -> list[RecipientRow]:
        return self.raw

    def _build(self, raw: RecipientRow) -> Recipient:
        return raw.recipient()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LazyRecipients):
            return self.rows == other.rows
        return super().__eq__(other)

    def __repr__(self) -> str:
        return f"LazyRecipients({len(self.rows)} rows)"


_Problem = tuple[int, str, str]  # (line, raw, reason): a RowProblem before it is needed


class RowProblems(_LazySequence[_Problem, RowProblem]):
    """Problems kept as tuples; a `RowProblem` is built on access (a file of bad rows stays cheap)."""

    __slots__ = ()

    def _build(self, raw: _Problem) -> RowProblem:
        return _row_problem(raw)


def _row_problem(p: _Problem) -> RowProblem:
    return RowProblem(line=p[0], raw=p[1], reason=p[2])


class RecipientList(BaseModel):
    # A parsed CSV holds `LazyRecipients` here (a Sequence of `Recipient`); `iter_rows()`
    # walks the compact rows without building a model each.
    recipients: Sequence[Recipient] = Field(default_factory=list)
    problems: list[RowProblem] = Field(default_factory=list)
    duplicates_removed: int = 0
    total_rows: int = 0
    columns: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)  # e.g. the file was not UTF-8

    @field_serializer("recipients")
    def _dump_recipients(self, recipients: Sequence[Recipient], info: SerializationInfo) -> list[dict[str, Any]]:
        return [r.model_dump(mode=info.mode) for r in recipients]

    def iter_rows(self) -> Iterator[Recipient | RecipientRow]:
        """The recipients, as compact rows when the list holds them (see `render`)."""
        if isinstance(self.recipients, LazyRecipients):
            return iter(self.recipients.rows)
        return iter(self.recipients)


PHONE_COLUMNS = ("to", "phone", "phone_number", "number", "mobile")
RAW_LIMIT = 80


def _truncate(raw: str) -> str:
    raw = raw.replace("\r", " ").replace("\n", " ")
    return raw if len(raw) <= RAW_LIMIT else raw[: RAW_LIMIT - 1] + "…"


def normalize_key(name: str) -> str:
    """Column / placeholder name as used for lookups: `First Name` -> `first_name`."""
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


# --------------------------------------------------------------------------- fast E.164
#
# `bot.core.input.phone.normalize` costs ~25 us a number (phonenumbers' parse + is_valid_number),
# 2.5 s for 100,000 rows. For the common clean shapes (digits with spaces, dashes, dots,
# parentheses; optional leading +) we follow phonenumbers.parse step by step, reusing its
# own helpers for the national-prefix rules, and validate with its metadata compiled once.
# Whatever we are not sure about (IDD prefixes, letters, invalid numbers, non-geographic
# codes) goes to `normalize`, which also writes the error messages.
# tests/test_recipients.py checks the two agree on every region's example numbers in three
# formats and on random digit strings.

# phonenumbers' private helpers; if a release renames them the fast path switches off.
# Any: they have no stubs, and only the fast path (_FAST: none is None) calls them.
_strip_national_prefix: Any = getattr(_pnu, "_maybe_strip_national_prefix_carrier_code", None)
_test_length: Any = getattr(_pnu, "_test_number_length", None)
_matches_general: Any = getattr(_pnu, "_match_national_number", None)
_VR: Any = getattr(_pnu, "ValidationResult", None)
_FAST = None not in (_strip_national_prefix, _test_length, _matches_general, _VR)
_BAD_LENGTHS = (
    {_VR.TOO_SHORT, _VR.IS_POSSIBLE_LOCAL_ONLY, _VR.INVALID_LENGTH} if _VR is not None else set()
)

_CLEAN = re.compile(r"^\+?\(?[0-9][0-9 ().\-]*[0-9]$")  # ASCII digits only: \d would accept other scripts
_NOT_DIGITS = re.compile(r"[^0-9]")
_TYPE_ATTRS = (
    "premium_rate", "toll_free", "shared_cost", "voip", "personal_number",
    "pager", "uan", "voicemail", "fixed_line", "mobile",
)  # fmt: skip

class _RegionRules:
    """One region's validation patterns, compiled once.

    phonenumbers calls a number valid when it fits the general description and at least one
    type (fixed line, mobile, toll free, ...), each type checking its possible lengths and
    then its pattern. We merge, per length, the patterns of the types allowing that length
    into one alternation: a full match of `(?:a)|(?:b)` is a full match of a or of b.
    """

    __slots__ = ("md", "general_lengths", "general", "by_length", "any_length", "leading", "national_prefix", "idd", "cc")

    def __init__(self, md: PhoneMetadata) -> None:
        self.md = md
        if md.country_code is None:  # every region's metadata has one; phonenumbers types it optional
            raise ValueError(f"phonenumbers metadata for {md.id} has no country code")
        self.cc: int = md.country_code
        general = self._desc(md.general_desc)
        self.general_lengths = general[0] if general else frozenset()
        self.general = re.compile(general[1]) if general else None
        types = [d for d in (self._desc(getattr(md, a)) for a in _TYPE_ATTRS) if d is not None]
        # Types without length data apply at every length.
        self.any_length = self._merge([p for lengths, p in types if not lengths])
        all_lengths = {n for lengths, _ in types for n in lengths}
        self.by_length = {
            n: self._merge([p for lengths, p in types if not lengths or n in lengths]) for n in all_lengths
        }
        self.leading = re.compile(md.leading_digits) if md.leading_digits else None
        self.national_prefix = re.compile(md.national_prefix_for_parsing) if md.national_prefix_for_parsing else None
        self.idd = re.compile(md.international_prefix) if md.international_prefix else None

    @staticmethod
    def _desc(desc: object) -> tuple[frozenset[int], str] | None:
        pattern = getattr(desc, "national_number_pattern", None)
        if desc is None or not pattern:
            return None
        return frozenset(getattr(desc, "possible_length", ()) or ()), pattern

    @staticmethod
    def _merge(patterns: list[str]) -> re.Pattern[str] | None:
        if not patterns:
            return None
        # Merged groups would renumber back-references; metadata has none, but be sure.
        if any(re.search(r"\\[1-9]|\(\?P=", p) for p in patterns):
            raise RuntimeError("phonenumbers metadata pattern with a back-reference")
        return re.compile("|".join(f"(?:{p})" for p in patterns))

    def has_type(self, nsn: str) -> bool:
        """phonenumbers' number type is not UNKNOWN."""
        n = len(nsn)
        if self.general is None or (self.general_lengths and n not in self.general_lengths):
            return False
        if self.general.fullmatch(nsn) is None:
            return False
        merged = self.by_length.get(n, self.any_length)
        return merged is not None and merged.fullmatch(nsn) is not None


_RULES: dict[str, _RegionRules | None] = {}


def _rules(region: str) -> _RegionRules | None:
    if region not in _RULES:
        md = PhoneMetadata.metadata_for_region(region, None) if region != "001" else None
        _RULES[region] = _RegionRules(md) if md is not None else None
    return _RULES[region]


def _fast_valid(cc: int, nsn: str) -> bool:
    """Same answer as phonenumbers.is_valid_number for a geographic calling code."""
    regions = COUNTRY_CODE_TO_REGION_CODE.get(cc, ())
    if len(regions) == 1:
        rules = _rules(regions[0])
        return rules is not None and rules.has_type(nsn)
    for region in regions:
        rules = _rules(region)
        if rules is None:
            continue
        if rules.leading is not None:
            if rules.leading.match(nsn):
                return rules.has_type(nsn)
        elif rules.has_type(nsn):
            return True
    return False


def _strip_trunk(nsn: str, rules: _RegionRules) -> str:
    """parse(): drop a national (trunk) prefix when what is left has a plausible length."""
    if rules.national_prefix is None or not rules.national_prefix.match(nsn):
        return nsn  # phonenumbers' helper would return the number unchanged
    _, stripped, _ = _strip_national_prefix(nsn, rules.md)
    return stripped if _test_length(stripped, rules.md) not in _BAD_LENGTHS else nsn


def _fast_e164(raw: str, default_region: str) -> str | None:
    """E.164 for a clean, valid number, or None to let `normalize` decide."""
    if not _FAST or not _CLEAN.match(raw):
        return None
    digits = _NOT_DIGITS.sub("", raw)
    if not 3 <= len(digits) <= 17:
        return None
    if raw[0] == "+":
        if digits[0] == "0":
            return None
        for size in (1, 2, 3):
            cc = int(digits[:size])
            if cc in COUNTRY_CODE_TO_REGION_CODE:
                break
        else:
            return None
        nsn = digits[size:]
        rules = _rules(COUNTRY_CODE_TO_REGION_CODE[cc][0])
    else:
        home = _rules(default_region)
        # An IDD prefix (011 in the US, 00 in Europe) means an international number.
        if home is None or (home.idd is not None and home.idd.match(digits)):
            return None
        cc, nsn, rules = home.cc, digits, home
        cc_text = str(home.cc)
        if digits.startswith(cc_text):
            # `1 617 555 1212` in the US: parse() reads the country code off the front when
            # the number only makes sense without it, or is too long with it.
            general = home.md.general_desc
            _, rest, _ = _strip_national_prefix(digits[len(cc_text) :], home.md)
            if (
                not _matches_general(digits, general, False) and _matches_general(rest, general, False)
            ) or _test_length(digits, home.md) == _VR.TOO_LONG:
                nsn, rules = rest, _rules(COUNTRY_CODE_TO_REGION_CODE[cc][0])
    if rules is None or len(nsn) < 2:
        return None
    nsn = _strip_trunk(nsn, rules)
    if not 2 <= len(nsn) <= 17:
        return None
    return f"+{cc}{nsn}" if _fast_valid(cc, nsn) else None


class _Normalizer:
    """Per-parse cache: the same raw text always gives the same answer."""

    # Capped: a list of 100,000 distinct numbers would keep every raw text alive (~10 MB)
    # for no hit; repeats (the point of the cache) show up early enough in real lists.
    LIMIT = 10_000

    def __init__(self, default_region: str) -> None:
        self.region = default_region.upper()
        self.cache: dict[str, str | InvalidNumber] = {}

    def __call__(self, raw: str) -> str:
        hit = self.cache.get(raw)
        if hit is None:
            try:
                hit = _fast_e164(raw, self.region) or normalize(raw, self.region)
            except InvalidNumber as exc:
                hit = exc
            if len(self.cache) < self.LIMIT:
                self.cache[raw] = hit
        if isinstance(hit, InvalidNumber):
            raise hit
        return hit


# --------------------------------------------------------------------------- building


class _Builder:
    """Counts rows, problems and duplicates; the callers keep the recipients in their own form."""

    def __init__(self, default_region: str, allow_duplicates: bool) -> None:
        self.normalize = _Normalizer(default_region)
        self.allow_duplicates = allow_duplicates
        self.seen: set[str] = set()
        self.problems: list[_Problem] = []
        self.total = 0
        self.duplicates = 0

    def problem(self, line: int, raw: str, reason: str) -> None:
        self.total += 1
        self.problems.append((line, _truncate(raw), reason))

    def accept(self, line: int, raw: list[str], sep: str, number: str) -> str | None:
        """The E.164 number of a new recipient; None for a problem (recorded) or a duplicate (counted)."""
        try:
            e164 = self.normalize(number)
        except InvalidNumber as exc:
            self.problem(line, sep.join(raw), str(exc))  # rebuilt only for problems
            return None
        self.total += 1
        if not self.allow_duplicates:
            if e164 in self.seen:
                self.duplicates += 1
                return None
            self.seen.add(e164)
        return e164


# --------------------------------------------------------------------------- pasted


def _split_pasted(line: str) -> tuple[str, str | None]:
    """`number, name` with the first tab, ';' or ',' as separator (names may contain the others)."""
    positions = [i for i in (line.find("\t"), line.find(";"), line.find(",")) if i >= 0]
    if not positions:
        return line.strip(), None
    cut = min(positions)
    return line[:cut].strip(), line[cut + 1 :].strip().strip('"').strip() or None


_LEADING_NUMBER = re.compile(r"^(\+?[0-9][0-9 ().\-]*[0-9])\s+([^\W\d_].*)$")


def parse_pasted(text: str, default_region: str = "US", allow_duplicates: bool = False) -> RecipientList:
    """One recipient a line: `number`, `number, name`, `number<TAB>name` or `number; name`."""
    builder = _Builder(default_region, allow_duplicates)
    recipients: list[Recipient] = []
    first = True
    for line_no, line in enumerate((text or "").splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        number, name = _split_pasted(stripped)
        if first:
            first = False
            # A header copied along with the rows (`to,name`) is not a recipient.
            if normalize_key(number) in PHONE_COLUMNS and (name is None or normalize_key(name) == "name"):
                continue
        if name is None and (m := _LEADING_NUMBER.match(number)):
            # `+1 617 555 1212 John Smith`: no separator, but the name is plain to see.
            number, name = m.group(1), m.group(2).strip()
        e164 = builder.accept(line_no, [stripped], "", number)
        if e164 is not None:
            fields = {"name": name, "to": e164} if name else {"to": e164}
            # Validated init (pydantic-core) is cheaper than model_construct's Python loop.
            recipients.append(Recipient(to=e164, name=name or None, fields=fields, line=line_no))
    return RecipientList.model_construct(
        recipients=recipients,
        problems=[_row_problem(p) for p in builder.problems],
        duplicates_removed=builder.duplicates,
        total_rows=builder.total,
        columns=["to", "name"],
        notes=[],
    )


# --------------------------------------------------------------------------- CSV

_MAGIC = {
    b"PK\x03\x04": "an Excel workbook or zip archive",
    b"\xd0\xcf\x11\xe0": "an old Excel (.xls) workbook",
    b"%PDF": "a PDF",
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
}


def _decode(data: bytes | str) -> tuple[str, list[str]]:
    notes: list[str] = []
    if isinstance(data, str):
        text = data[1:] if data.startswith("\ufeff") else data
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        # Excel's "Unicode Text" export: UTF-16 with a BOM (full of NUL bytes, yet text).
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError:
            raise CsvError("The file starts like UTF-16 text but isn't valid UTF-16. Save it as 'CSV UTF-8' and upload again.") from None
    else:
        for magic, what in _MAGIC.items():
            if data.startswith(magic):
                raise CsvError(
                    f"The file looks like {what}, not a CSV. Export or save it as CSV (CSV UTF-8 in Excel) and upload that."
                )
        if b"\x00" in data:
            raise CsvError("The file looks like a binary file (found NUL bytes); upload a .csv export.")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            try:
                text, used = data.decode("cp1252"), "Windows-1252"
            except UnicodeDecodeError:
                text, used = data.decode("latin-1"), "Latin-1"
            notes.append(
                f"The file isn't UTF-8 (byte {exc.start + 1} is invalid), so it was read as {used}. "
                "If names look wrong, save it as 'CSV UTF-8' and upload again."
            )
    if "\x00" in text:
        raise CsvError("The file looks like a binary file (found NUL bytes); upload a .csv export.")
    return text, notes


def _sniff_delimiter(header_line: str) -> str:
    """The most frequent of `,` `;` TAB outside quotes on the header line (`,` on a tie or none)."""
    counts = {",": 0, ";": 0, "\t": 0}
    quoted = False
    for ch in header_line:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in counts:
            counts[ch] += 1
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _column_names(header: list[str]) -> list[str]:
    names: list[str] = []
    for i, cell in enumerate(header, start=1):
        key = normalize_key(cell) or f"column_{i}"
        base, n = key, 2
        while key in names:
            key = f"{base}_{n}"
            n += 1
        names.append(key)
    return names


_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")


def _lines(text: str) -> Iterator[str]:
    """The lines of `io.StringIO(text, newline="")`, without its 4-bytes-a-character copy."""
    for m in _LINE.finditer(text):
        yield m.group()


def _first_nonblank_line(text: str) -> str:
    """`next(line for line in text.splitlines() if line.strip())` without splitting the whole text."""
    size = 4096
    while True:
        whole = size >= len(text)
        lines = text[:size].splitlines()
        for line in lines if whole else lines[:-1]:  # the last line of a prefix may go on
            if line.strip():
                return line
        if whole:
            raise CsvError("The file is empty.")  # not reached: the caller checked for text
        size *= 4


def _rows(text: str, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """(first physical line of the record, cells) for every non-blank record."""
    reader = csv.reader(_lines(text), delimiter=delimiter, skipinitialspace=True)
    start = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            if "field larger than field limit" in str(exc):
                raise CsvError(
                    f"Line {start}: a quoted field never ends or is huge. Check for a stray '\"' on that line."
                ) from None
            raise CsvError(f"Line {start}: the CSV can't be read ({exc}).") from None
        if any(cell.strip() for cell in row):
            yield start, row
        start = reader.line_num + 1


class RecipientStream:
    """A checked CSV whose rows are parsed while they are read: what `iter_csv` returns.

    Whole-file problems were raised already (`CsvError`, as from `parse_csv`); iterating
    yields one `RecipientRow` at a time and keeps none, so 100,000 rows cost no more than
    one. `problems`, `duplicates_removed` and `total_rows` are final once the rows have been
    read to the end (reading them earlier raises). It can be read once; the text is
    released at the end.
    """

    def __init__(
        self, text: str, delimiter: str, columns: list[str], to_index: int, name_index: int | None,
        notes: list[str], default_region: str, allow_duplicates: bool,
    ) -> None:
        self.columns = columns
        self.notes = notes
        self._text: str | None = text
        self._delimiter = delimiter
        self._to_index = to_index
        self._name_index = name_index
        self._builder = _Builder(default_region, allow_duplicates)
        self._started = False
        self._finished = False

    def __iter__(self) -> Iterator[RecipientRow]:
        if self._started:
            raise RuntimeError("a RecipientStream can be read once; call iter_csv again")
        self._started = True
        return self._generate()

    def _generate(self) -> Iterator[RecipientRow]:
        text, self._text = self._text, None
        assert text is not None
        builder = self._builder
        delimiter, to_index, name_index = self._delimiter, self._to_index, self._name_index
        columns = tuple(self.columns)
        width = len(columns)
        rows = _rows(text, delimiter)
        del text  # the generator holds it until the last row
        next(rows)  # the header
        for line, row in rows:
            cells = [c.strip() for c in row]
            if len(cells) < width:
                cells.extend([""] * (width - len(cells)))
            number = cells[to_index]
            if not number:
                short = f" (the row has {len(row)} fields, the header {width})" if len(row) <= to_index else ""
                builder.problem(line, delimiter.join(row), f"No phone number in the 'to' column{short}.")
                continue
            e164 = builder.accept(line, row, delimiter, number)
            if e164 is None:
                continue
            if len(cells) > width:
                del cells[width:]
            cells[to_index] = e164
            name = cells[name_index] if name_index is not None else None
            yield RecipientRow(line, e164, name or None, tuple(cells), columns)
        self._finished = True
        # The counts stay; the numbers seen (~10 MB for 100,000) and the cache can go.
        builder.seen = set()
        builder.normalize.cache.clear()

    def _final(self) -> _Builder:
        if not self._finished:
            raise RuntimeError("read the rows to the end first: the counts are not final before")
        return self._builder

    @property
    def problems(self) -> RowProblems:
        return RowProblems(self._final().problems)

    @property
    def duplicates_removed(self) -> int:
        return self._final().duplicates

    @property
    def total_rows(self) -> int:
        return self._final().total

    def iter_rows(self) -> Iterator[RecipientRow]:
        return iter(self)


def iter_csv(
    data: bytes | str,
    default_region: str = "US",
    allow_duplicates: bool = False,
    max_rows: int = 100_000,
) -> RecipientStream:
    """Check a CSV as `parse_csv` does (same `CsvError`s) and return its rows as a stream.

    The file is read through once here (CSV syntax errors and the row limit are whole-file
    problems, known before anything is drafted), and once more while the stream is read.
    """
    text, notes = _decode(data)
    del data  # the caller's reference may go too: only the text is kept
    if not text or text.isspace():  # == `not text.strip()`, without a copy of the text
        raise CsvError("The file is empty. Upload a CSV with a header line such as 'to,name' and one row per recipient.")
    # Sniff from the first non-blank line: that is the header.
    delimiter = _sniff_delimiter(_first_nonblank_line(text))
    header: list[str] | None = None
    data_rows = -1
    for _, row in _rows(text, delimiter):
        if header is None:
            header = row
        data_rows += 1
    if header is None:
        raise CsvError("The file has no header line. Add one such as 'to,name' above the rows.")
    columns = _column_names(header)
    to_index = next((columns.index(c) for c in PHONE_COLUMNS if c in columns), None)
    if to_index is None:
        shown = ", ".join(cell.strip() or "(blank)" for cell in header)
        if any(_looks_like_phone(cell, default_region) for cell in header):
            raise CsvError(
                f"The first line ({_truncate(delimiter.join(header))}) looks like a recipient, not a header. "
                "Add a header line such as 'to,name' above the rows."
            )
        raise CsvError(
            f"The CSV has no 'to' column. Found columns: {shown}. Rename the phone number column to 'to' "
            "(phone, phone_number, number and mobile also work)."
        )
    if data_rows > max_rows:
        raise CsvError(
            f"The CSV has {data_rows:,} rows; the limit is {max_rows:,}. Split it into files of at most {max_rows:,} rows."
        )
    columns[to_index] = "to"  # `phone` etc. is `{to}` in templates
    name_index = next((columns.index(c) for c in NAME_COLUMNS if c in columns), None)
    repeated = sum(1 for cell in header if normalize_key(cell) == "name")
    if repeated > 1:
        notes.append(f"The CSV has {repeated} 'name' columns; {{name}} uses the first one "
                     "(the others are {name_2}" + (", {name_3}…" if repeated > 2 else "") + ").")
    return RecipientStream(text, delimiter, columns, to_index, name_index, notes, default_region, allow_duplicates)


def parse_csv(
    data: bytes | str,
    default_region: str = "US",
    allow_duplicates: bool = False,
    max_rows: int = 100_000,
) -> RecipientList:
    """The whole list at once (compact rows, a `Recipient` built on access). Big files: `iter_csv`."""
    stream = iter_csv(data, default_region, allow_duplicates, max_rows)
    del data
    # 100,000 kept rows are 200,000 containers; the cyclic GC would rescan them again and
    # again though none can form a cycle. Paused, then restored.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        rows = list(stream)
    finally:
        if gc_was_enabled:
            gc.enable()
    return RecipientList.model_construct(
        recipients=LazyRecipients(rows),
        problems=list(stream.problems),
        duplicates_removed=stream.duplicates_removed,
        total_rows=stream.total_rows,
        columns=stream.columns,
        notes=stream.notes,
    )


# The recipient's name: `name`, or else (no `name` column) `first_name`, then `full_name`.
NAME_COLUMNS = ("name", "first_name", "full_name")


def _looks_like_phone(cell: str, region: str) -> bool:
    if sum(ch.isdigit() for ch in cell) < 7:
        return False
    try:
        normalize(cell, region)
    except InvalidNumber:
        return False
    return True


# --------------------------------------------------------------------------- templates

_TOKEN = re.compile(r"\{\{|\}\}|\{\s*([A-Za-z_][A-Za-z0-9_ \-]*?)\s*\}")
ALWAYS_AVAILABLE = ("name", "to")


def _placeholders_in_order(template_text: str) -> list[str]:
    seen: dict[str, None] = {}
    for m in _TOKEN.finditer(template_text):
        if m.group(1) is not None:
            seen[normalize_key(m.group(1))] = None
    return list(seen)


def placeholders(template_text: str) -> set[str]:
    """Normalised placeholder names in the template: `Hi {First Name}` -> {"first_name"}."""
    return set(_placeholders_in_order(template_text))


def check_placeholders(template_text: str, columns: Iterable[str]) -> list[str]:
    """Placeholders with no column, in order of appearance (`{name}` and `{to}` always exist)."""
    known = {normalize_key(c) for c in columns} | set(ALWAYS_AVAILABLE)
    return [p for p in _placeholders_in_order(template_text) if p not in known]


class Renderer:
    """`render` with the template parsed once: a bulk draft fills it for every recipient."""

    def __init__(self, template_text: str) -> None:
        self.names = _placeholders_in_order(template_text)
        # Literal text (str) and placeholders (1-tuples of the key), as `_TOKEN.sub` would cut it.
        parts: list[str | tuple[str]] = []
        pos = 0
        for m in _TOKEN.finditer(template_text):
            parts.append(template_text[pos : m.start()])
            token = m.group(0)
            parts.append("{" if token == "{{" else "}" if token == "}}" else (normalize_key(m.group(1)),))
            pos = m.end()
        parts.append(template_text[pos:])
        self.parts = [p for p in parts if p != ""]
        self._columns: tuple[str, ...] | None = None
        self._keys: tuple[str, ...] = ()

    def values(self, recipient: Recipient | RecipientRow) -> dict[str, str]:
        if isinstance(recipient, RecipientRow):
            if recipient.columns is not self._columns:  # one tuple for all rows of a parse
                self._columns = recipient.columns
                self._keys = tuple(normalize_key(c) for c in recipient.columns)
            values = dict(zip(self._keys, recipient.values, strict=False))
        else:
            values = {normalize_key(k): v for k, v in recipient.fields.items()}
        values["name"] = recipient.name or values.get("name") or ""
        values["to"] = recipient.to
        return values

    def __call__(self, recipient: Recipient | RecipientRow) -> str:
        values = self.values(recipient)
        unknown = [p for p in self.names if p not in values]
        if unknown:
            available = list(ALWAYS_AVAILABLE) + [k for k in values if k not in ALWAYS_AVAILABLE]
            raise PlaceholderError(unknown, available)
        return "".join(p if isinstance(p, str) else (values[p[0]] or "") for p in self.parts)


def render(template_text: str, recipient: Recipient | RecipientRow) -> str:
    """Fill `{name}` and `{column}` placeholders; `{{`/`}}` are literal braces.

    A brace that does not form a placeholder (`{:)}`, a lone `}`) is kept as written.
    """
    return Renderer(template_text)(recipient)


__all__ = [
    "CsvError",
    "LazyRecipients",
    "PlaceholderError",
    "Recipient",
    "RecipientList",
    "RecipientRow",
    "RecipientStream",
    "Renderer",
    "RowProblem",
    "RowProblems",
    "check_placeholders",
    "iter_csv",
    "parse_csv",
    "parse_pasted",
    "placeholders",
    "render",
]
