"""How many SMS segments a text costs, and in which encoding.

Rules (provider notes, "Across providers"): GSM-7 fits 160 septets in one segment and 153
per part once split (the user data header takes the rest); one character outside GSM-7
makes the whole message UCS-2, 70 code units in one segment and 67 per part. Extension
characters (`^{}[]~\\|€` and form feed) are an escape plus a character, so they cost two
septets, and a part never ends between the escape and its character. Likewise a UCS-2 part
never ends between the two halves of a surrogate pair (emoji), as phones would show garbage.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# GSM 03.38 default alphabet, in table order (0x00-0x7F). 0x1B is the escape to the
# extension table, so it is not a character of its own.
GSM7_BASIC: frozenset[str] = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ"  # 0x1B (escape) left out
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)

# GSM 03.38 extension table: each costs escape + character = 2 septets.
GSM7_EXTENDED: frozenset[str] = frozenset("\f^{}\\[~]|€")

GSM_SINGLE = 160
GSM_PART = 153
UCS2_SINGLE = 70
UCS2_PART = 67

Encoding = Literal["GSM-7", "UCS-2"]


@dataclass(frozen=True)
class SegmentInfo:
    encoding: Encoding
    characters: int  # GSM-7: septets (extension chars count 2); UCS-2: UTF-16 code units
    segments: int
    per_segment: int  # capacity of one segment as sent: 160/70 single, 153/67 when split
    non_gsm: tuple[str, ...] = ()  # distinct characters that forced UCS-2, in order of appearance


def _costs(text: str) -> tuple[Encoding, list[int], tuple[str, ...]]:
    """Per-character cost in septets (GSM-7) or UTF-16 code units (UCS-2)."""
    non_gsm: dict[str, None] = {}
    for ch in text:
        if ch not in GSM7_BASIC and ch not in GSM7_EXTENDED:
            non_gsm[ch] = None
    if not non_gsm:
        return "GSM-7", [2 if ch in GSM7_EXTENDED else 1 for ch in text], ()
    # Astral characters (most emoji) are a surrogate pair: two code units.
    return "UCS-2", [2 if ord(ch) > 0xFFFF else 1 for ch in text], tuple(non_gsm)


def _pack(costs: list[int], part_size: int) -> int:
    """Number of parts when units are packed greedily and never split across parts."""
    parts, used = 1, 0
    for cost in costs:
        if used + cost > part_size:
            parts += 1
            used = 0
        used += cost
    return parts


def segment_info(text: str) -> SegmentInfo:
    encoding, costs, non_gsm = _costs(text)
    total = sum(costs)
    single, part = (GSM_SINGLE, GSM_PART) if encoding == "GSM-7" else (UCS2_SINGLE, UCS2_PART)
    if total == 0:
        return SegmentInfo(encoding, 0, 0, single, non_gsm)
    if total <= single:
        return SegmentInfo(encoding, total, 1, single, non_gsm)
    return SegmentInfo(encoding, total, _pack(costs, part), part, non_gsm)


def describe_segments(info: SegmentInfo) -> str:
    """`2 SMS segments (GSM-7, 170 characters)`."""
    seg = "segment" if info.segments == 1 else "segments"
    chars = "character" if info.characters == 1 else "characters"
    return f"{info.segments} SMS {seg} ({info.encoding}, {info.characters} {chars})"
