"""parse_pointer: the canonical text DVC writes is read without YAML, to the same answer."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gitreg.errors import StorageError
from gitreg.store import parse_pointer

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,30}", fullmatch=True)
md5s = st.one_of(
    st.binary(min_size=16, max_size=16).map(bytes.hex),
    st.from_regex(r"[0-9e]{32}", fullmatch=True),  # numbers to YAML
)


def canonical(md5: str, size: int, path: str) -> bytes:
    return f"outs:\n- md5: {md5}\n  size: {size}\n  hash: md5\n  path: {path}\n".encode()


@settings(max_examples=100, deadline=None)
@given(md5s, st.integers(0, 10**17), st.one_of(names, st.sampled_from(["true", "Null", "no", "policy.pt"])))
def test_the_fast_path_says_what_yaml_says(md5: str, size: int, path: str) -> None:
    raw = canonical(md5, size, path)
    via_yaml = raw + b"# a comment: read by the YAML parser only\n"
    try:
        expected = parse_pointer(via_yaml, "p.dvc")
    except StorageError as e:
        with pytest.raises(StorageError) as info:
            parse_pointer(raw, "p.dvc")
        assert info.value.message == e.message
        return
    assert parse_pointer(raw, "p.dvc") == expected


@pytest.mark.parametrize(
    ("raw", "said"),
    [
        (canonical("a" * 32, 1, "x").replace(b"path: x", b"path: ../x"), "leaves its folder"),
        (canonical("0" * 32, 1, "x"), "no md5 digest"),  # YAML reads it as the number 0
        (canonical("0" * 32, 1, "x").replace(b"0" * 32, b"z" * 32), "no md5 digest"),
        (b"outs: [ {md5: unclosed\n", "not a valid DVC pointer"),
    ],
)
def test_a_pointer_off_the_canonical_text_is_still_checked(raw: bytes, said: str) -> None:
    with pytest.raises(StorageError, match=said):
        parse_pointer(raw, "p.dvc")
