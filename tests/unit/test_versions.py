"""Unit tests for gitreg.versions: names, their order, the next free name, model names."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gitreg.errors import GitregError, InvalidModelName, InvalidVersionName
from gitreg.versions import (
    MAX_SEQ,
    MODEL_PATTERN,
    VERSION_PATTERN,
    VersionName,
    check_model_name,
    format_version,
    is_version,
    next_free,
    parse_version,
    sort_key,
    version_for,
)

FAST = settings(max_examples=200, deadline=None)

minutes = st.datetimes(
    min_value=datetime(1, 1, 1),
    max_value=datetime(9999, 12, 31, 23, 59),
    timezones=st.just(UTC),
).map(lambda d: d.replace(second=0, microsecond=0))
seqs = st.one_of(st.just(1), st.integers(min_value=1, max_value=MAX_SEQ))
version_names = st.builds(VersionName, minutes, seqs)
# Strings shaped like the documented pattern (ASCII digits), valid dates or not.
ascii_pattern = VERSION_PATTERN.replace(r"\d", "[0-9]")
shaped = st.from_regex(ascii_pattern, fullmatch=True)


# -- format / parse are exact inverses -----------------------------------------------------------
@FAST
@given(version_names)
def test_format_then_parse_gives_the_same_version(v: VersionName) -> None:
    text = format_version(v)
    assert parse_version(text) == v
    assert is_version(text)
    assert str(v) == text
    assert re.fullmatch(VERSION_PATTERN, text, flags=re.ASCII)


@FAST
@given(st.one_of(shaped, st.from_regex(VERSION_PATTERN, fullmatch=True), st.text(max_size=30)))
@example("v2025-07-06--18h51")
@example("v2025-07-06--18h51-2")
@example("v2025-07-06--18h51-10")
@example("v\u0662\u0660\u0662\u0665-07-06--18h51")  # Arabic-Indic digits
@example("v2025-07-06--18h51-\u0662")
def test_every_accepted_string_formats_back_byte_identical(text: str) -> None:
    try:
        v = parse_version(text)
    except InvalidVersionName as e:
        assert e.name == text
        assert not is_version(text)
        return
    assert format_version(v) == text
    assert is_version(text)
    assert v.minute.tzinfo is UTC
    assert v.minute.second == 0 and v.minute.microsecond == 0
    assert v.seq >= 1


def test_parse_known_examples() -> None:
    assert parse_version("v2025-07-06--18h51") == VersionName(datetime(2025, 7, 6, 18, 51, tzinfo=UTC), 1)
    assert parse_version("v2025-07-06--18h51-2") == VersionName(datetime(2025, 7, 6, 18, 51, tzinfo=UTC), 2)
    assert parse_version("v0001-01-01--00h00").minute == datetime(1, 1, 1, tzinfo=UTC)
    assert parse_version("v9999-12-31--23h59-123").seq == 123
    assert parse_version("v2024-02-29--12h00").minute.day == 29  # leap day


def test_first_of_a_minute_has_no_suffix() -> None:
    minute = datetime(2025, 7, 6, 18, 51, tzinfo=UTC)
    assert format_version(VersionName(minute)) == "v2025-07-06--18h51"
    assert format_version(VersionName(minute, 2)) == "v2025-07-06--18h51-2"
    assert format_version(VersionName(minute, 10)) == "v2025-07-06--18h51-10"


NOT_VERSIONS = [
    "",
    "v",
    "v1.0",
    "1.0.0",
    "latest",
    "2025-07-06--18h51",  # no leading v
    "V2025-07-06--18h51",
    "v2025-13-01--00h00",  # month 13
    "v2025-00-01--00h00",
    "v2025-02-30--00h00",
    "v2023-02-29--00h00",  # not a leap year
    "v0000-01-01--00h00",  # year 0
    "v2025-07-06--24h00",
    "v2025-07-06--18h60",
    "v2025-07-06--18h51-1",  # the first of a minute has no suffix
    "v2025-07-06--18h51-0",
    "v2025-07-06--18h51-02",  # leading zero
    "v2025-07-06--18h51-",
    "v2025-07-06--18h51--2",
    "v2025-07-06--18h51-+2",
    "v2025-07-06--18h51-2a",
    "-02",
    "v2025-7-6--18h51",
    "v2025-07-06-18h51",
    "v2025-07-06--18:51",
    "v2025-07-06--18H51",
    "v2025-07-06T18h51",
    "v12025-07-06--18h51",
    " v2025-07-06--18h51",
    "v2025-07-06--18h51 ",
    "v2025-07-06--18h51\n",
    "\tv2025-07-06--18h51",
    "v2025-07-06--18h51\x00",
    "v\u0662\u0660\u0662\u0665-07-06--18h51",  # '٢٠٢٥'
    "v2025-07-06--18h51-\u0662",  # '-٢'
    "v2025-07-06--\uff11\uff18h51",  # full-width digits
    "v2025\u201007\u201006--18h51",  # unicode hyphen
    "refs/tags/v2025-07-06--18h51",
    "v2025-07-06--18h51-99999999999999999999",  # a suffix is bounded (MAX_SEQ)
    "v2025-07-06--18h51-1000000",
    "v2025-07-06--18h51-" + "9" * 5000,
]


@pytest.mark.parametrize("name", NOT_VERSIONS)
def test_non_versions_are_rejected(name: str) -> None:
    assert not is_version(name)
    with pytest.raises(InvalidVersionName) as info:
        parse_version(name)
    assert info.value.name == name
    assert isinstance(info.value, GitregError)
    assert info.value.hint  # says what a version looks like
    with pytest.raises(InvalidVersionName):
        sort_key(name)


@FAST
@given(version_names, st.sampled_from([" ", "\n", "x", "-", "-1", "0", "\u0662"]), st.booleans())
def test_decorated_versions_are_rejected(v: VersionName, junk: str, before: bool) -> None:
    text = junk + format_version(v) if before else format_version(v) + junk
    if junk == "0" and not before and v.seq > 1:
        return  # "…-2" + "0" is "…-20": another valid version
    assert not is_version(text)


@FAST
@given(minutes, st.integers(min_value=MAX_SEQ + 1, max_value=10**40))
def test_a_suffix_past_max_seq_is_no_version(minute: datetime, seq: int) -> None:
    text = format_version(VersionName(minute, seq))
    assert not is_version(text)
    assert not re.fullmatch(VERSION_PATTERN, text, flags=re.ASCII)
    with pytest.raises(InvalidVersionName):
        parse_version(text)


def test_the_largest_suffix_is_a_version() -> None:
    assert parse_version(f"v2025-07-06--18h51-{MAX_SEQ}").seq == MAX_SEQ


# -- order ----------------------------------------------------------------------------------------
@FAST
@given(version_names, version_names)
def test_order_is_time_then_sequence(a: VersionName, b: VersionName) -> None:
    assert (a < b) == ((a.minute, a.seq) < (b.minute, b.seq))
    assert (a == b) == (format_version(a) == format_version(b))
    # The same holds for names read back from text.
    assert (sort_key(format_version(a)) < sort_key(format_version(b))) == (a < b)


@FAST
@given(st.lists(st.datetimes(timezones=st.just(UTC)), min_size=1, max_size=20))
def test_sorting_names_by_sort_key_is_sorting_by_time(moments: list[datetime]) -> None:
    names = [format_version(version_for(m)) for m in moments]
    by_name = sorted(names, key=sort_key)
    by_time = [format_version(version_for(m)) for m in sorted(moments)]
    assert by_name == by_time


def test_sequence_order_within_a_minute_is_numeric_not_lexical() -> None:
    base = "v2025-07-06--18h51"
    names = [f"{base}-10", f"{base}-2", base, f"{base}-9", f"{base}-11", "v2025-07-06--18h50-99"]
    assert sorted(names, key=sort_key) == [
        "v2025-07-06--18h50-99",
        base,
        f"{base}-2",
        f"{base}-9",
        f"{base}-10",
        f"{base}-11",
    ]
    assert sort_key(f"{base}-99") < sort_key("v2025-07-06--18h52")


def test_version_for_uses_the_utc_minute() -> None:
    cest = timezone(timedelta(hours=2))
    assert format_version(version_for(datetime(2025, 7, 6, 20, 51, 59, 999, tzinfo=cest))) == (
        "v2025-07-06--18h51"
    )
    # Crossing midnight backwards when converting to UTC.
    assert format_version(version_for(datetime(2025, 1, 1, 0, 30, tzinfo=cest))) == "v2024-12-31--22h30"
    with pytest.raises(ValueError):
        version_for(datetime(2025, 7, 6, 18, 51))  # naive


@FAST
@given(
    st.datetimes(
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=-7)), timezone(timedelta(hours=5, minutes=45))]
        )
    )
)
def test_version_for_is_the_floor_minute(when: datetime) -> None:
    v = version_for(when)
    assert v.seq == 1
    assert v.minute <= when < v.minute + timedelta(minutes=1)
    assert v.minute.second == 0 and v.minute.microsecond == 0


# -- next free name -------------------------------------------------------------------------------
WHEN = datetime(2025, 7, 6, 18, 51, 23, tzinfo=UTC)
BASE = "v2025-07-06--18h51"


def test_next_free_returns_the_base_name_when_nothing_is_taken() -> None:
    assert next_free(WHEN, []) == BASE
    assert next_free(WHEN, ["v2025-07-06--18h50", "v2025-07-06--18h52", "v1.0", "junk"]) == BASE


def test_next_free_counts_up_past_taken_names() -> None:
    assert next_free(WHEN, [BASE]) == f"{BASE}-2"
    assert next_free(WHEN, [BASE, f"{BASE}-2"]) == f"{BASE}-3"
    assert next_free(WHEN, iter([f"{BASE}-2", BASE, f"{BASE}-3"])) == f"{BASE}-4"  # any iterable
    # The first free one, even when a later one is taken.
    assert next_free(WHEN, [BASE, f"{BASE}-3"]) == f"{BASE}-2"
    # Past nine: -10, not -1 with a 0 appended.
    assert next_free(WHEN, [BASE, *(f"{BASE}-{i}" for i in range(2, 10))]) == f"{BASE}-10"


def test_next_free_needs_an_aware_datetime() -> None:
    with pytest.raises(ValueError):
        next_free(datetime(2025, 7, 6, 18, 51), [])


@FAST
@given(st.datetimes(timezones=st.just(UTC)), st.integers(min_value=0, max_value=30), st.data())
def test_next_free_is_the_first_untaken_name(when: datetime, n: int, data: st.DataObject) -> None:
    base = version_for(when)
    mine = [format_version(VersionName(base.minute, s)) for s in range(1, n + 1)]
    others = data.draw(st.lists(version_names, max_size=5))
    existing = data.draw(st.permutations(mine + [format_version(o) for o in others]))
    name = next_free(when, existing)
    assert name not in existing
    v = parse_version(name)
    assert v.minute == base.minute
    # Every smaller sequence number in that minute is taken: no gaps are skipped.
    assert all(format_version(VersionName(base.minute, s)) in existing for s in range(1, v.seq))
    if all(o.minute != base.minute for o in others):
        assert v.seq == n + 1
        if n == 0:
            assert name == format_version(base)


# -- model names ----------------------------------------------------------------------------------
GOOD_MODELS = ["policy", "p", "0", "a-b", "a_b", "a.b", "my-model.v2_final", "1abc", "a..b", "x-", "a" * 100]
BAD_MODELS = [
    "",
    "Policy",
    "POLICY",
    "pOlicy",
    "a/b",
    "/a",
    "a/",
    "..",
    ".",
    "..a",
    ".hidden",
    "-a",
    "_a",
    "a b",
    " a",
    "a ",
    "a\n",
    "a\t",
    "a\x00",
    "a:b",
    "a\\b",
    "a@b",
    "a+b",
    "a" * 101,
    "pоlicy",  # Cyrillic о
    "policу",  # Cyrillic у
    "ｐolicy",  # full-width p
    "ǆ",  # a lower-case letter, but not ASCII
    "é",
    "ß",
    "a\u0662",  # Arabic-Indic digit
    "\u0662",
    "a\u200bb",  # zero-width space
    "ﬁle",  # ligature
]


@pytest.mark.parametrize("name", GOOD_MODELS)
def test_valid_model_names_are_accepted(name: str) -> None:
    assert check_model_name(name) == name
    assert re.fullmatch(MODEL_PATTERN, name)


@pytest.mark.parametrize("name", BAD_MODELS)
def test_invalid_model_names_are_rejected(name: str) -> None:
    with pytest.raises(InvalidModelName) as info:
        check_model_name(name)
    assert info.value.name == name
    assert info.value.hint


@FAST
@given(st.text(max_size=12))
@example("policy")
@example("a.b-c_d")
def test_model_names_follow_the_pattern(name: str) -> None:
    """check_model_name accepts exactly the ASCII pattern (names up to 100 characters)."""
    expected = re.fullmatch(r"[a-z0-9][a-z0-9._-]*", name, flags=re.ASCII) is not None
    try:
        check_model_name(name)
        accepted = True
    except InvalidModelName:
        accepted = False
    assert accepted == expected


@FAST
@given(st.from_regex(r"[a-z0-9][a-z0-9._-]{0,99}", fullmatch=True))
def test_every_name_from_the_pattern_is_accepted(name: str) -> None:
    assert check_model_name(name) == name
