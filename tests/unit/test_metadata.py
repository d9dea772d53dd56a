"""Unit tests for gitreg.metadata: metadata.json, the tag-message block, the validation note."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from gitreg.errors import GitregError, MetadataError
from gitreg.metadata import (
    MAX_METADATA_BYTES,
    MAX_TAG_BLOCK_CHARS,
    MAX_TAG_ENTRIES,
    MAX_TAG_FILES,
    MAX_TAG_TEXT,
    TAG_BLOCK_BEGIN,
    TAG_BLOCK_END,
    BundleMetadata,
    CheckResult,
    FileDigest,
    TagSummary,
    ValidationRecord,
    format_tag_message,
    parse_metadata,
    parse_tag_block,
    parse_tag_message,
    parse_validation_note,
    summary_from,
    summary_problem,
)
from gitreg.versions import VersionName, format_version

FAST = settings(max_examples=200, deadline=None)
SOME = settings(max_examples=100, deadline=None)  # for the strategies that are slow to draw

TRAINER: dict[str, Any] = {
    "algo": "DQN",
    "framework": "torchscript",
    "created_at": "2025-07-06T18:51:23+00:00",
    "metrics": {"reward": 101.5, "loss": 0.49, "sharpe": 1.1, "episodes": 500},
    "hyperparameters": {"lr": 0.001, "gamma": 0.99, "layers": [64, 64], "env": {"name": "CartPole-v1"}},
}


def raw(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def meta_error(data: bytes) -> MetadataError:
    with pytest.raises(MetadataError) as info:
        parse_metadata(data)
    err = info.value
    assert "\n" not in str(err), "the error must fit on one line"
    assert err.source == "metadata.json"
    return err


# -- metadata.json ------------------------------------------------------------------------------
def test_the_trainer_shape_parses() -> None:
    m = parse_metadata(raw(TRAINER))
    assert m.algo == "DQN"
    assert m.framework == "torchscript"
    assert m.created_at == datetime(2025, 7, 6, 18, 51, 23, tzinfo=UTC)
    assert m.created_at.utcoffset() == timedelta(0)
    assert m.metrics == {"reward": 101.5, "loss": 0.49, "sharpe": 1.1, "episodes": 500.0}
    assert all(isinstance(v, float) for v in m.metrics.values())
    assert m.hyperparameters == TRAINER["hyperparameters"]
    assert m.extra == {}
    assert m.parent is None and m.input_shape is None and m.description is None


def test_the_optional_fields_parse() -> None:
    doc = {
        **TRAINER,
        "input_shape": [4],
        "data_version": "d1",
        "code_commit": "abc123",
        "parent": "v2025-07-05--09h00-2",
        "env_id": "CartPole-v1",
        "description": "first try",
        "architecture": "mlp",
    }
    m = parse_metadata(raw(doc))
    assert m.input_shape == [4]
    assert m.parent == "v2025-07-05--09h00-2"
    assert (m.data_version, m.code_commit, m.env_id, m.description, m.architecture) == (
        "d1",
        "abc123",
        "CartPole-v1",
        "first try",
        "mlp",
    )
    assert m.extra == {}


def test_only_the_three_required_fields_are_needed() -> None:
    m = parse_metadata(b'{"algo": "PPO", "framework": "state_dict", "created_at": "2025-01-02T03:04:05Z"}')
    assert m.metrics == {} and m.hyperparameters == {}
    assert m.created_at == datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_a_naive_created_at_is_read_as_utc() -> None:
    m = parse_metadata(raw({**TRAINER, "created_at": "2025-07-06T18:51:23"}))
    assert m.created_at.tzinfo is not None
    assert m.created_at == datetime(2025, 7, 6, 18, 51, 23, tzinfo=UTC)


def test_an_offset_created_at_keeps_its_instant() -> None:
    m = parse_metadata(raw({**TRAINER, "created_at": "2025-07-06T20:51:23+02:00"}))
    assert m.created_at == datetime(2025, 7, 6, 18, 51, 23, tzinfo=UTC)


def test_algorithm_is_accepted_for_algo() -> None:
    doc = {k: v for k, v in TRAINER.items() if k != "algo"} | {"algorithm": "PPO"}
    m = parse_metadata(raw(doc))
    assert m.algo == "PPO"
    assert "algorithm" not in m.extra


def test_parameters_is_accepted_for_hyperparameters() -> None:
    doc = {k: v for k, v in TRAINER.items() if k != "hyperparameters"} | {"parameters": {"lr": 0.1}}
    m = parse_metadata(raw(doc))
    assert m.hyperparameters == {"lr": 0.1}
    assert "parameters" not in m.extra


def test_unknown_keys_are_kept() -> None:
    doc = {**TRAINER, "trainer": {"name": "sb3", "version": "2.3"}, "seed": 7, "notes": None}
    m = parse_metadata(raw(doc))
    assert m.model_extra == {"trainer": {"name": "sb3", "version": "2.3"}, "seed": 7, "notes": None}
    assert m.extra == m.model_extra
    m.extra["seed"] = 8  # a copy
    assert m.model_extra is not None and m.model_extra["seed"] == 7
    # … and they survive a dump.
    assert json.loads(m.model_dump_json())["trainer"] == {"name": "sb3", "version": "2.3"}


@pytest.mark.parametrize("field", ["algo", "framework", "created_at"])
def test_a_missing_required_field_is_named_in_one_line(field: str) -> None:
    doc = {k: v for k, v in TRAINER.items() if k != field}
    err = meta_error(raw(doc))
    assert field in err.problem
    assert "missing" in err.problem
    assert field in str(err)
    assert isinstance(err, GitregError) and err.hint


def test_only_the_first_problem_is_reported() -> None:
    err = meta_error(b"{}")
    assert "\n" not in err.problem
    assert any(f in err.problem for f in ("algo", "framework", "created_at"))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"algo": ""}, "algo"),
        ({"algo": 3}, "algo"),
        ({"algo": None}, "algo"),
        ({"framework": ""}, "framework"),
        ({"framework": ["torchscript"]}, "framework"),
        ({"created_at": "yesterday"}, "created_at"),
        ({"created_at": "2025-13-01T00:00:00Z"}, "created_at"),
        ({"metrics": {"reward": "high"}}, "metrics"),
        ({"metrics": [1, 2]}, "metrics"),
        ({"metrics": {"reward": None}}, "metrics"),
        ({"hyperparameters": [1, 2]}, "hyperparameters"),
        ({"input_shape": []}, "input_shape"),
        ({"input_shape": [0]}, "input_shape"),
        ({"input_shape": [-4]}, "input_shape"),
        ({"input_shape": [1] * 9}, "input_shape"),
        ({"input_shape": [10**7]}, "input_shape"),
        ({"input_shape": "4"}, "input_shape"),
        ({"parent": "v1.0"}, "parent"),
        ({"parent": "v2025-07-06--18h51-1"}, "parent"),
        ({"parent": "latest"}, "parent"),
        ({"parent": 3}, "parent"),
        ({"description": {"a": 1}}, "description"),
    ],
)
def test_wrong_field_values_are_metadata_errors(change: dict[str, Any], field: str) -> None:
    err = meta_error(raw({**TRAINER, **change}))
    assert field in err.problem


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"   ",
        b"{",
        b"{'algo': 'DQN'}",
        b'{"algo": "DQN",}',
        b"algo: DQN\n",
        b"\xff\xfe\x00garbage",
        b"\x80\x81",
        b"[" * 100_000,  # deeper than the json module's recursion limit
        b'{"a": 1} trailing',
    ],
)
def test_non_json_is_a_metadata_error(data: bytes) -> None:
    err = meta_error(data)
    assert "JSON" in err.problem


@pytest.mark.parametrize("data", [b"[]", b"[1, 2]", b"1", b"null", b'"algo"', b"true", b"3.5"])
def test_non_objects_are_metadata_errors(data: bytes) -> None:
    err = meta_error(data)
    assert "object" in err.problem


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999", "-1e999"])
def test_non_finite_metrics_are_rejected(literal: str) -> None:
    data = raw(TRAINER).replace(b'"reward": 101.5', f'"reward": {literal}'.encode())
    assert literal.encode() in data
    err = meta_error(data)
    assert "reward" in err.problem
    assert "finite" in err.problem


def test_a_bad_parent_version_is_rejected() -> None:
    err = meta_error(raw({**TRAINER, "parent": "v2025-07-06"}))
    assert "parent" in err.problem
    assert "v2025-07-06" in err.problem


def test_input_larger_than_the_limit_is_rejected_before_parsing() -> None:
    body = raw(TRAINER)
    at_limit = body[:-1] + b" " * (MAX_METADATA_BYTES - len(body)) + b"}"
    assert len(at_limit) == MAX_METADATA_BYTES
    assert parse_metadata(at_limit).algo == "DQN"
    too_big = body[:-1] + b" " * (MAX_METADATA_BYTES - len(body) + 1) + b"}"
    err = meta_error(too_big)
    assert str(MAX_METADATA_BYTES) in err.problem
    assert str(len(too_big)) in err.problem
    # Even garbage is refused by its size, not parsed.
    assert str(MAX_METADATA_BYTES) in meta_error(b"\xff" * (MAX_METADATA_BYTES + 1)).problem


def test_the_source_is_named() -> None:
    with pytest.raises(MetadataError) as info:
        parse_metadata(b"{", source="bundles/b1/metadata.json")
    assert info.value.source == "bundles/b1/metadata.json"
    assert str(info.value).startswith("bundles/b1/metadata.json: ")


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=10,
)
FIELDS = [
    "algo",
    "algorithm",
    "framework",
    "created_at",
    "metrics",
    "hyperparameters",
    "parameters",
    "input_shape",
    "parent",
    "description",
    "data_version",
    "code_commit",
    "env_id",
    "architecture",
]


def _never_raises_anything_else(data: bytes) -> BundleMetadata | None:
    try:
        m = parse_metadata(data)
    except MetadataError as e:
        assert "\n" not in str(e)
        return None
    assert m.created_at.tzinfo is not None
    assert m.algo and m.framework
    assert all(math.isfinite(v) for v in m.metrics.values())
    return m


@FAST
@given(json_values)
def test_arbitrary_json_values_only_raise_metadata_errors(value: Any) -> None:
    _never_raises_anything_else(json.dumps(value).encode())


@SOME
@given(st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=5))
def test_arbitrary_field_values_only_raise_metadata_errors(change: dict[str, Any]) -> None:
    _never_raises_anything_else(json.dumps({**TRAINER, **change}).encode())


@FAST
@given(st.binary(max_size=200))
@example(b'{"algo": "\\ud800", "framework": "x", "created_at": "2025-01-01T00:00:00Z"}')
@example(b"\xef\xbb\xbf{}")  # BOM
@example(b'"\\udfff"')
def test_arbitrary_bytes_only_raise_metadata_errors(data: bytes) -> None:
    _never_raises_anything_else(data)


# -- the tag message ----------------------------------------------------------------------------
def _summary(**kw: Any) -> TagSummary:
    meta = parse_metadata(raw(TRAINER))
    args: dict[str, Any] = {
        "model": "policy",
        "version": "v2025-07-06--18h51",
        "files": [FileDigest(path="policy.pt", md5="0" * 32, size=1234)],
        "registered_at": datetime(2025, 7, 6, 18, 51, 30, tzinfo=UTC),
        "registered_by": "Test User <test@example.com>",
    }
    return summary_from(meta, **(args | kw))


def _files(n: int) -> list[FileDigest]:
    return [FileDigest(path=f"f{i}.bin", md5="0" * 32, size=1) for i in range(n)]


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"files": _files(MAX_TAG_FILES + 1)}, f"the limit is {MAX_TAG_FILES}"),
        ({"model": "../../etc"}, "not a valid model name"),
        ({"model": "Policy"}, "not a valid model name"),
        ({"version": "v2025-07-06--18h51-99999999999999999999"}, "not a version name"),
        ({"registered_by": "x" * (MAX_TAG_TEXT + 1)}, "registered_by is longer"),
        ({"files": [FileDigest(path="../x", md5="0" * 32, size=1)]}, "not a path inside"),
        ({"files": [FileDigest(path="/etc/passwd", md5="0" * 32, size=1)]}, "not a path inside"),
        ({"files": [FileDigest(path="a\nb", md5="0" * 32, size=1)]}, "not a path inside"),
        ({"files": [FileDigest(path="a", md5="0" * 32, size=-1)]}, "bad digest or size"),
    ],
)
def test_a_summary_out_of_bounds_is_no_summary(change: dict[str, Any], said: str) -> None:
    s = _summary().model_copy(update=change)
    problem = summary_problem(s)
    assert problem is not None and said in problem, problem
    parsed, human, why = parse_tag_block(format_tag_message(s, "note"))
    assert parsed is None and human == "note" and why == problem
    assert parse_tag_message(format_tag_message(s))[0] is None


@pytest.mark.parametrize("field", ["metrics", "parameters"])
def test_too_many_metrics_or_parameters_is_no_summary(field: str) -> None:
    many = {f"k{i}": 1.0 for i in range(MAX_TAG_ENTRIES + 1)}
    s = _summary().model_copy(update={field: many})
    assert f"{MAX_TAG_ENTRIES + 1} {field}" in (summary_problem(s) or "")
    assert summary_problem(_summary().model_copy(update={field: dict(list(many.items())[:-1])})) is None


def test_the_largest_summary_within_bounds_parses() -> None:
    s = _summary(files=_files(MAX_TAG_FILES))
    assert summary_problem(s) is None
    assert parse_tag_message(format_tag_message(s))[0] == s


def test_an_oversized_block_is_not_parsed_at_all() -> None:
    text = f"subject\n\n{TAG_BLOCK_BEGIN}\n" + " " * (MAX_TAG_BLOCK_CHARS + 1) + f"{{}}\n{TAG_BLOCK_END}\n"
    parsed, _, why = parse_tag_block(text)
    assert parsed is None and f"the limit is {MAX_TAG_BLOCK_CHARS}" in why


def test_summary_from_copies_the_metadata() -> None:
    s = _summary()
    assert s.algorithm == "DQN"
    assert s.framework == "torchscript"
    assert s.parameters == TRAINER["hyperparameters"]
    assert s.metrics["reward"] == 101.5
    assert s.files[0].path == "policy.pt"
    assert s.schema_version == 1


def test_tag_message_layout() -> None:
    text = format_tag_message(_summary(), "trained on the new data\n")
    lines = text.splitlines()
    assert lines[0] == "policy v2025-07-06--18h51: DQN"
    assert lines[1] == ""
    assert lines[2] == "trained on the new data"
    assert TAG_BLOCK_BEGIN in lines and TAG_BLOCK_END in lines
    body = text[text.index(TAG_BLOCK_BEGIN) + len(TAG_BLOCK_BEGIN) : text.index(TAG_BLOCK_END)]
    data = json.loads(body)
    assert data["schema"] == 1
    assert data["model"] == "policy"
    assert "data_version" not in data  # None fields are left out
    assert text.endswith(TAG_BLOCK_END + "\n")


@pytest.mark.parametrize("message", [None, "", "one line", "  padded  \n\n", "two\n\nparagraphs\n# hash"])
def test_tag_message_round_trip(message: str | None) -> None:
    s = _summary()
    summary, human = parse_tag_message(format_tag_message(s, message))
    assert summary == s
    assert human == (message or "").strip()


SIGNATURES = [
    "-----BEGIN PGP SIGNATURE-----\n\niQEzBAABCAAdFiEE\n=abcd\n-----END PGP SIGNATURE-----\n",
    "-----BEGIN SSH SIGNATURE-----\nU1NIU0lHAAAAAQ\n-----END SSH SIGNATURE-----\n",
]


@pytest.mark.parametrize("signature", SIGNATURES)
def test_a_trailing_signature_does_not_break_the_block(signature: str) -> None:
    s = _summary()
    summary, human = parse_tag_message(format_tag_message(s, "note") + signature)
    assert summary == s
    assert human == "note"


@pytest.mark.parametrize(
    "text",
    ["", "just a hand-made tag\n\nwith a body\n", "release v1.0", TAG_BLOCK_END + "\n" + TAG_BLOCK_BEGIN],
)
def test_a_message_without_the_block_gives_none(text: str) -> None:
    summary, human = parse_tag_message(text)
    assert summary is None
    assert human == text.strip()


@pytest.mark.parametrize(
    "body",
    ["", "{", "not json", "[]", "null", '{"model": "policy"}', '{"schema": 1, "model": 3}'],
)
def test_a_broken_block_gives_none_and_keeps_the_message(body: str) -> None:
    text = f"policy v2025-07-06--18h51: DQN\n\nmy note\n\n{TAG_BLOCK_BEGIN}\n{body}\n{TAG_BLOCK_END}\n"
    summary, human = parse_tag_message(text)
    assert summary is None
    assert human == "my note"


def test_a_truncated_block_gives_none() -> None:
    text = format_tag_message(_summary(), "note")
    cut = text[: text.index(TAG_BLOCK_END)]
    assert parse_tag_message(cut)[0] is None
    # A block with a damaged middle is broken, too.
    broken = text.replace('"model": "policy"', '"model": "policy",,')
    assert parse_tag_message(broken) == (None, "note")


def test_unknown_keys_in_the_block_are_kept() -> None:
    text = format_tag_message(_summary()).replace('"schema": 1,', '"schema": 1,\n  "future": [1, 2],')
    summary, _ = parse_tag_message(text)
    assert summary is not None
    assert summary.model_extra == {"future": [1, 2]}


offsets = st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30))])
moments = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(9999, 1, 1), timezones=offsets)
finite = st.floats(allow_nan=False, allow_infinity=False)
plain_json = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), finite, st.text(max_size=10)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
versions = st.builds(
    VersionName,
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)).map(
        lambda d: d.replace(second=0, microsecond=0)
    ),
    st.integers(1, 20),
).map(format_version)
hexes = st.binary(min_size=16, max_size=16).map(bytes.hex)
# Free text, but without our own block markers (a user cannot be stopped from pasting them).
free_text = st.text(max_size=40).filter(lambda t: "-----BEGIN GITREG" not in t and "-----END GITREG" not in t)
# A file path inside the model folder (summary_problem refuses others): any text but a
# control character, "/"-separated, no empty or ".." part.
path_parts = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="/"),
    min_size=1,
    max_size=8,
).filter(lambda part: part != "..")
digests = st.builds(
    FileDigest,
    path=st.lists(path_parts, min_size=1, max_size=3).map("/".join),
    md5=hexes,
    size=st.integers(0, 2**40),
)
summaries = st.builds(
    TagSummary,
    model=st.sampled_from(["policy", "p", "risk-model.v2", "0"]),
    version=versions,
    algorithm=st.sampled_from(["DQN", "PPO", "a  b", " lead", "two\nlines", "\t"]) | free_text,
    framework=st.sampled_from(["torchscript", "state_dict", "safetensors"]),
    created_at=moments,
    registered_at=moments,
    registered_by=free_text,
    metrics=st.dictionaries(st.text(max_size=10), finite, max_size=5),
    parameters=st.dictionaries(st.text(max_size=10), plain_json, max_size=4),
    files=st.lists(digests, max_size=3),
    data_version=st.none() | free_text,
    code_commit=st.none() | hexes,
    parent=st.none() | versions,
    env_id=st.none() | free_text,
    description=st.none() | free_text,
    input_shape=st.none() | st.lists(st.integers(1, 1000), min_size=1, max_size=4),
)


@SOME
@given(summaries, st.none() | free_text, st.sampled_from(["", *SIGNATURES]))
@example(
    TagSummary(
        model="policy",
        version="v2025-07-06--18h51",
        algorithm="DQN\nwith a second line",
        framework="torchscript",
        created_at=datetime(2025, 7, 6, tzinfo=UTC),
        registered_at=datetime(2025, 7, 6, tzinfo=UTC),
        registered_by="me",
    ),
    "the user's note",
    "",
)
def test_tag_message_round_trip_property(summary: TagSummary, message: str | None, signature: str) -> None:
    text = format_tag_message(summary, message) + signature
    parsed, human = parse_tag_message(text)
    assert parsed == summary
    assert human == (message or "").strip()


@FAST
@given(st.text(max_size=200))
@example(TAG_BLOCK_BEGIN + "\n{}\n" + TAG_BLOCK_END)
@example(TAG_BLOCK_BEGIN + "\n\ud800\n" + TAG_BLOCK_END)
def test_any_text_parses_to_a_summary_or_none(text: str) -> None:
    summary, human = parse_tag_message(text)
    assert summary is None or isinstance(summary, TagSummary)
    assert isinstance(human, str)


@SOME
@given(st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=5))
def test_every_accepted_metadata_makes_a_tag_message_that_reads_back(change: dict[str, Any]) -> None:
    """What parse_metadata accepts can be registered: its summary survives the tag message."""
    try:
        meta = parse_metadata(json.dumps({**TRAINER, **change}).encode())
    except MetadataError:
        return
    assume(not _has_nan(meta.hyperparameters))  # NaN in free-form parameters is written as null
    s = summary_from(
        meta,
        model="policy",
        version="v2025-07-06--18h51",
        files=[],
        registered_at=datetime(2025, 7, 6, tzinfo=UTC),
        registered_by="me",
    )
    parsed, _ = parse_tag_message(format_tag_message(s, "m"))
    assert parsed == s


def _has_nan(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_nan(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_nan(v) for v in value)
    return False


@pytest.mark.parametrize("bad", ['"\\ud800"', '{"\\udfff": 1}', "[" * 300 + "]" * 300])
def test_metadata_that_cannot_be_written_back_is_rejected(bad: str) -> None:
    """Lone surrogates and absurd nesting would crash the tag message later: refuse them now."""
    data = raw(TRAINER).replace(b'"gamma": 0.99', f'"gamma": {bad}'.encode())
    assert bad.encode() in data
    err = meta_error(data)
    assert "surrogate" in err.problem or "nested" in err.problem


def test_reasonable_nesting_is_accepted_and_written_back() -> None:
    deep = json.loads("[" * 50 + "1" + "]" * 50)
    m = parse_metadata(raw({**TRAINER, "hyperparameters": {"deep": deep}, "extra": {"deep": deep}}))
    assert m.hyperparameters["deep"] == deep
    s = _summary(registered_by="me")
    s = s.model_copy(update={"parameters": m.hyperparameters})
    assert parse_tag_message(format_tag_message(s))[0] == s


# -- the validation note ------------------------------------------------------------------------
def _record(**kw: Any) -> ValidationRecord:
    args: dict[str, Any] = {
        "version": "v2025-07-06--18h51",
        "passed": True,
        "checked_at": datetime(2025, 7, 6, 19, 0, tzinfo=UTC),
        "checked_by": "ci",
        "gitreg_version": "0.1.0",
        "torch_version": "2.10.0",
        "checks": [CheckResult(name="digest", ok=True), CheckResult(name="load", ok=True, detail="0.1 s")],
        "files": [FileDigest(path="policy.pt", md5="a" * 32, size=10)],
        "load_seconds": 0.12,
        "forward_seconds": 0.003,
        "output_shape": [1, 2],
    }
    return ValidationRecord(**(args | kw))


def test_validation_note_round_trip() -> None:
    rec = _record()
    note = rec.to_note()
    assert note.endswith("}\n")
    assert json.loads(note)["schema"] == 1
    assert "error" not in json.loads(note)  # None is left out
    assert parse_validation_note(note) == rec


def test_a_failed_validation_note_round_trips() -> None:
    rec = _record(passed=False, error="forward pass raised RuntimeError", load_seconds=None)
    back = parse_validation_note(rec.to_note())
    assert back == rec
    assert back is not None and back.passed is False and back.error == rec.error


def test_unknown_keys_in_a_note_are_kept() -> None:
    note = _record().to_note().replace('"schema": 1,', '"schema": 1, "runner": "gh-42",')
    back = parse_validation_note(note)
    assert back is not None and back.model_extra == {"runner": "gh-42"}


records = st.builds(
    ValidationRecord,
    version=versions,
    passed=st.booleans(),
    checked_at=moments,
    checked_by=free_text,
    gitreg_version=st.text(max_size=10),
    torch_version=st.none() | st.text(max_size=10),
    checks=st.lists(st.builds(CheckResult, name=st.text(max_size=10), ok=st.booleans(), detail=free_text)),
    files=st.lists(digests, max_size=3),
    load_seconds=st.none() | finite,
    forward_seconds=st.none() | finite,
    output_shape=st.none() | st.lists(st.integers(0, 10**6), max_size=4),
    error=st.none() | free_text,
)


@SOME
@given(records)
def test_validation_note_round_trip_property(rec: ValidationRecord) -> None:
    assert parse_validation_note(rec.to_note()) == rec


@pytest.mark.parametrize(
    "text",
    [
        "",
        "garbage",
        "{",
        "[]",
        "null",
        "{}",
        '{"version": "v2025-07-06--18h51"}',
        '{"version": "v2025-07-06--18h51", "passed": "maybe", "checked_at": "2025-07-06T19:00:00Z"}',
        '{"version": "v2025-07-06--18h51", "passed": true, "checked_at": "never"}',
        '{"version": 1, "passed": true, "checked_at": "2025-07-06T19:00:00Z"}',
        "\ud800",
    ],
)
def test_a_garbage_note_gives_none(text: str) -> None:
    assert parse_validation_note(text) is None


@FAST
@given(st.one_of(st.text(max_size=100), json_values.map(json.dumps)))
def test_any_note_text_gives_a_record_or_none(text: str) -> None:
    rec = parse_validation_note(text)
    assert rec is None or isinstance(rec, ValidationRecord)
