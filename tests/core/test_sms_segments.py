import pytest

from bot.core.input.sms_segments import (
    GSM7_BASIC,
    GSM7_EXTENDED,
    SegmentInfo,
    describe_segments,
    segment_info,
)


def test_tables_match_gsm_03_38() -> None:
    # 128 code points minus the escape; the extension table adds form feed and ^{}\[~]|€.
    assert len(GSM7_BASIC) == 127
    assert GSM7_EXTENDED == frozenset("\f^{}\\[~]|€")
    assert not GSM7_BASIC & GSM7_EXTENDED
    for ch in "@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà\n\r":
        assert ch in GSM7_BASIC
    for ch in "ç`’€":  # lowercase c-cedilla, backtick and curly quote are not in the basic table
        assert ch not in GSM7_BASIC


def test_empty_text_is_zero_segments() -> None:
    assert segment_info("") == SegmentInfo("GSM-7", 0, 0, 160)


@pytest.mark.parametrize(
    ("length", "segments", "per_segment"),
    [(1, 1, 160), (160, 1, 160), (161, 2, 153), (306, 2, 153), (307, 3, 153), (459, 3, 153), (460, 4, 153)],
)
def test_gsm_boundaries(length: int, segments: int, per_segment: int) -> None:
    info = segment_info("a" * length)
    assert (info.encoding, info.characters, info.segments, info.per_segment) == (
        "GSM-7",
        length,
        segments,
        per_segment,
    )


def test_extended_characters_count_twice() -> None:
    assert segment_info("a€").characters == 3
    assert segment_info("{}[]").characters == 8
    assert segment_info("\f").characters == 2
    assert segment_info("€" * 80) == SegmentInfo("GSM-7", 160, 1, 160)
    info = segment_info("€" * 80 + "a")  # 161 septets: split
    assert (info.characters, info.segments) == (161, 2)


def test_escape_sequence_never_split_across_parts() -> None:
    # 306 septets would fill exactly two 153-septet parts, but the euro sign (escape +
    # character) cannot start at septet 153 of part one, so it moves to part two and one
    # "a" spills into a third part.
    text = "a" * 152 + "€" + "a" * 152
    info = segment_info(text)
    assert info.characters == 306
    assert info.segments == 3
    # Same septet count with the euro sign away from the boundary: two parts.
    assert segment_info("€" + "a" * 304).segments == 2


def test_one_non_gsm_character_makes_everything_ucs2() -> None:
    info = segment_info("Don’t forget")  # curly apostrophe from a phone keyboard
    assert info.encoding == "UCS-2"
    assert info.non_gsm == ("’",)
    assert info.characters == 12


@pytest.mark.parametrize(
    ("length", "segments", "per_segment"),
    [(70, 1, 70), (71, 2, 67), (134, 2, 67), (135, 3, 67)],
)
def test_ucs2_boundaries(length: int, segments: int, per_segment: int) -> None:
    info = segment_info("’" + "a" * (length - 1))
    assert (info.encoding, info.characters, info.segments, info.per_segment) == (
        "UCS-2",
        length,
        segments,
        per_segment,
    )


def test_emoji_count_as_two_code_units() -> None:
    assert segment_info("😀").characters == 2
    assert segment_info("😀" * 35) == SegmentInfo("UCS-2", 70, 1, 70, ("😀",))
    info = segment_info("😀" * 36)  # 72 units: 33 emoji (66 units) per part
    assert (info.characters, info.segments, info.per_segment) == (72, 2, 67)


def test_surrogate_pair_never_split_across_parts() -> None:
    text = "x" * 66 + "😀" + "x" * 66  # 134 units = 2 x 67, but the emoji can't straddle
    info = segment_info(text)
    assert info.characters == 134
    assert info.segments == 3


def test_extended_chars_in_ucs2_count_once() -> None:
    # In UCS-2 there is no escape: € is one code unit.
    info = segment_info("€’")
    assert (info.encoding, info.characters) == ("UCS-2", 2)


def test_describe_segments() -> None:
    assert describe_segments(segment_info("a" * 170)) == "2 SMS segments (GSM-7, 170 characters)"
    assert describe_segments(segment_info("hi")) == "1 SMS segment (GSM-7, 2 characters)"
    assert describe_segments(segment_info("😀")) == "1 SMS segment (UCS-2, 2 characters)"
    assert describe_segments(segment_info("’")) == "1 SMS segment (UCS-2, 1 character)"
    assert describe_segments(segment_info("")) == "0 SMS segments (GSM-7, 0 characters)"
