"""Unit tests for gitreg.manifest: round-trip load/dump, edits, checks, line numbers, writes."""

from __future__ import annotations

import difflib
import io
import json
import os
import stat
import time
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gitreg.errors import GitregError, ManifestError
from gitreg.manifest import (
    HIGHER_IS_BETTER,
    LOWER_IS_BETTER,
    MAX_MANIFEST_BYTES,
    Manifest,
    ManifestModel,
    atomic_write,
    load,
    loads,
    loads_bytes,
    missing_models,
    new_manifest_text,
    round_trip_yaml,
)
from gitreg.manifest_scan import MAX_MANIFEST_DEPTH, MAX_MANIFEST_LINES, MAX_MANIFEST_TOKENS, prescan
from gitreg.versions import VersionName, format_version

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SOME = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)  # ruamel is slow

# The example of DESIGN.md, comments and all.
EXAMPLE = """\
# Edit through `gitreg promote` / `gitreg deploy` (they open a PR) or by hand in a PR.
version: 1
models:
  policy:
    path: models/policy
    stages:
      production: v2025-07-06--18h51
      staging: v2025-07-07--10h30
    canary:                       # optional: share of traffic for a candidate
      version: v2025-07-07--10h30
      traffic: 10                 # percent
    archived: [v2025-06-01--09h00]
    retention: {keep_last: 20, max_age_days: 90}
"""

# The same, with more of what people write by hand around it: models is not the last section.
RICHER = """\
# The gitreg manifest.
version: 1   # schema

# Models, one entry each.
models:
  # the trading policy
  policy:
    path: models/policy
    stages:
      production: v2025-07-06--18h51   # promoted by alice
      staging: "v2025-07-07--10h30"
    archived:
      - v2025-06-01--09h00
      - 'v2025-06-02--09h00'
  risk:
    path: models/risk/   # trailing slash on purpose
    stages: {}

# Metric directions for compare/report.
metrics:
  higher_is_better: [custom_score]
  lower_is_better: [cost]
"""


def diff_ops(old: str, new: str) -> tuple[list[str], list[str]]:
    """(removed lines, added lines) between two texts."""
    removed, added = [], []
    for line in difflib.ndiff(old.splitlines(), new.splitlines()):
        if line.startswith("- "):
            removed.append(line[2:])
        elif line.startswith("+ "):
            added.append(line[2:])
    return removed, added


def manifest_error(text: str) -> ManifestError:
    with pytest.raises(ManifestError) as info:
        loads(text)
    assert isinstance(info.value, GitregError)
    assert info.value.path == "models.yaml"
    assert "\n" not in info.value.problem
    return info.value


# -- round trip ---------------------------------------------------------------------------------
@pytest.mark.parametrize("text", [EXAMPLE, RICHER], ids=["design-example", "richer"])
def test_load_then_dump_is_byte_identical(text: str) -> None:
    m = loads(text)
    assert m.dumps() == text
    # Twice, to be sure the document is not changed by dumping.
    assert m.dumps() == text


def test_the_example_is_read_into_the_schema() -> None:
    entry = loads(EXAMPLE).model.models["policy"]
    assert entry.path == "models/policy"
    assert entry.stages == {"production": "v2025-07-06--18h51", "staging": "v2025-07-07--10h30"}
    assert list(entry.stages) == ["production", "staging"]
    assert entry.canary is not None
    assert (entry.canary.version, entry.canary.traffic) == ("v2025-07-07--10h30", 10)
    assert entry.archived == ["v2025-06-01--09h00"]
    assert entry.retention is not None
    assert (entry.retention.keep_last, entry.retention.max_age_days) == (20, 90)


def test_the_richer_example_is_read_into_the_schema() -> None:
    model = loads(RICHER).model
    assert model.models["policy"].stages["staging"] == "v2025-07-07--10h30"
    assert model.models["policy"].archived == ["v2025-06-01--09h00", "v2025-06-02--09h00"]
    assert model.models["risk"].path == "models/risk"  # normalized
    assert model.models["risk"].stages == {}
    assert model.metrics.higher_is_better == ["custom_score"]


@pytest.mark.parametrize("text", ["", "# only a comment\n", "version: 1\n", "version: 1\nmodels: {}\n"])
def test_empty_manifests_have_no_models(text: str) -> None:
    m = loads(text)
    assert m.model.models == {}
    assert m.model.version == 1


def test_new_manifest_text_is_a_valid_empty_manifest() -> None:
    text = new_manifest_text()
    assert text.startswith("#")
    m = loads(text)
    assert m.model == ManifestModel()
    assert m.dumps() == text


# -- ensure_model -------------------------------------------------------------------------------
def test_ensure_model_adds_an_entry_and_keeps_every_other_line() -> None:
    m = loads(EXAMPLE)
    assert m.ensure_model("other", "models/other") is True
    text = m.dumps()
    removed, added = diff_ops(EXAMPLE, text)
    assert removed == []
    assert added == ["  other:", "    path: models/other"]
    assert set(EXAMPLE.splitlines()) <= set(text.splitlines())
    assert text.startswith(EXAMPLE)  # appended at the end of `models`, the last section
    assert m.model.models["other"].path == "models/other"
    assert m.model.models["policy"] == loads(EXAMPLE).model.models["policy"]
    assert loads(text).model == m.model


def test_ensure_model_in_the_middle_of_a_file_keeps_every_other_line() -> None:
    m = loads(RICHER)
    assert m.ensure_model("new-model", "models/new-model") is True
    text = m.dumps()
    removed, added = diff_ops(RICHER, text)
    assert removed == []
    assert added == ["  new-model:", "    path: models/new-model"]
    lines = text.splitlines()
    # Inside `models`, before the metrics section and its comment.
    assert lines.index("  new-model:") < lines.index("# Metric directions for compare/report.")
    assert loads(text).model.metrics.lower_is_better == ["cost"]


def test_ensure_model_of_a_known_model_changes_nothing() -> None:
    m = loads(EXAMPLE)
    assert m.ensure_model("policy", "somewhere/else") is False
    assert m.dumps() == EXAMPLE
    assert m.model.models["policy"].path == "models/policy"


def test_ensure_model_on_a_new_manifest_writes_block_style() -> None:
    m = loads(new_manifest_text())
    assert m.ensure_model("policy", "models/policy") is True
    text = m.dumps()
    assert "{" not in text and "}" not in text, text
    assert text.endswith("models:\n  policy:\n    path: models/policy\n"), text
    assert text.startswith(new_manifest_text().split("version:")[0])  # the header comments stay
    assert loads(text).model.models["policy"].path == "models/policy"
    # A second model goes below the first, still block style.
    m.ensure_model("risk", "models/risk")
    assert m.dumps().endswith("  policy:\n    path: models/policy\n  risk:\n    path: models/risk\n")


@pytest.mark.parametrize("text", ["", "# hello\n", "version: 1\n", "version: 1\nmodels: {}\n"])
def test_ensure_model_without_a_models_section(text: str) -> None:
    m = loads(text)
    assert m.ensure_model("policy", "models/policy")
    out = m.dumps()
    assert "models:\n  policy:\n    path: models/policy\n" in out, out
    assert loads(out).model.models["policy"].path == "models/policy"


@pytest.mark.parametrize(("name", "path"), [("Bad Name", "models/x"), ("ok", "../outside"), ("ok", "/abs")])
def test_ensure_model_with_bad_input_raises_and_leaves_the_document_alone(name: str, path: str) -> None:
    m = loads(EXAMPLE)
    with pytest.raises(ManifestError):
        m.ensure_model(name, path)
    assert m.dumps() == EXAMPLE
    assert name not in m.model.models


# -- reading ------------------------------------------------------------------------------------
def test_stages_of() -> None:
    m = loads(EXAMPLE)
    assert m.stages_of("policy", "v2025-07-06--18h51") == ["production"]
    assert m.stages_of("policy", "v2025-07-07--10h30") == ["staging", "canary"]
    assert m.stages_of("policy", "v2025-06-01--09h00") == ["archived"]
    assert m.stages_of("policy", "v2025-01-01--00h00") == []
    assert m.stages_of("nobody", "v2025-07-06--18h51") == []


def test_stages_of_custom_stages_and_a_canary_only_version() -> None:
    m = loads(
        "version: 1\nmodels:\n  p:\n    path: p\n    stages: {production: v2025-01-01--00h00,"
        " shadow: v2025-01-01--00h00}\n    canary: {version: v2025-01-02--00h00, traffic: 2.5}\n"
    )
    assert m.stages_of("p", "v2025-01-01--00h00") == ["production", "shadow"]
    assert m.stages_of("p", "v2025-01-02--00h00") == ["canary"]


def test_directions_defaults() -> None:
    higher, lower = loads(EXAMPLE).directions()
    assert set(HIGHER_IS_BETTER) == higher
    assert set(LOWER_IS_BETTER) == lower
    assert {"reward", "sharpe", "accuracy"} <= higher
    assert {"loss", "rmse", "max_drawdown"} <= lower
    assert not higher & lower


def test_directions_with_overrides() -> None:
    m = loads(
        "version: 1\nmetrics:\n  higher_is_better: [custom_score, loss]\n  lower_is_better: [cost, sharpe]\n"
    )
    higher, lower = m.directions()
    assert "custom_score" in higher and "custom_score" not in lower
    assert "cost" in lower and "cost" not in higher
    assert "loss" in higher and "loss" not in lower  # moved
    assert "sharpe" in lower and "sharpe" not in higher  # moved
    assert "reward" in higher and "rmse" in lower  # the rest stays
    assert not higher & lower


@FAST
@given(
    st.lists(st.sampled_from([*HIGHER_IS_BETTER[:5], *LOWER_IS_BETTER[:5], "x", "y"]), max_size=6),
    st.lists(st.sampled_from([*HIGHER_IS_BETTER[:5], *LOWER_IS_BETTER[:5], "x", "y"]), max_size=6),
)
def test_directions_never_overlap_and_overrides_win(up: list[str], down: list[str]) -> None:
    model = ManifestModel.model_validate({"metrics": {"higher_is_better": up, "lower_is_better": down}})
    higher, lower = Manifest(None, model).directions()
    assert not higher & lower
    assert set(down) <= lower  # lower_is_better wins a tie
    assert set(up) - set(down) <= higher


# -- validation errors and their lines ----------------------------------------------------------
BASE = """\
version: 1
models:
  policy:
    path: models/policy
    stages:
      production: v2025-07-06--18h51
      staging: v2025-07-07--10h30
    canary:
      version: v2025-07-07--10h30
      traffic: 10
    archived: [v2025-06-01--09h00]
    retention: {keep_last: 20, max_age_days: 90}
"""


def test_the_base_is_valid() -> None:
    assert loads(BASE).dumps() == BASE


@pytest.mark.parametrize(
    ("old", "new", "line", "words"),
    [
        ("    stages:\n", "    colour: red\n    stages:\n", 5, ["colour", "unknown key"]),
        ("version: 1\n", "version: 1\nowner: me\n", 2, ["owner", "unknown key"]),
        ("      traffic: 10\n", "      traffic: 10\n      weight: 3\n", 11, ["weight", "unknown key"]),
        ("staging: v2025-07-07--10h30", "staging: v1.0", 7, ["staging", "v1.0"]),
        ("production: v2025-07-06--18h51", "production: latest", 6, ["production", "latest"]),
        ("staging: v2025-07-07--10h30", "Staging: v2025-07-07--10h30", 7, ["Staging"]),
        ("staging: v2025-07-07--10h30", "archived: v2025-07-07--10h30", 7, ["archived"]),
        ("traffic: 10", "traffic: 150", 10, ["traffic"]),
        ("traffic: 10", "traffic: -1", 10, ["traffic"]),
        ("traffic: 10", "traffic: lots", 10, ["traffic"]),
        ("traffic: 10", "traffic: .nan", 10, ["traffic"]),
        ("      version: v2025-07-07--10h30", "      version: v2", 9, ["canary", "v2"]),
        ("path: models/policy", "path: ../x", 4, ["path", "../x"]),
        ("path: models/policy", "path: models/../../x", 4, ["path"]),
        ("path: models/policy", "path: /etc/models", 4, ["path", "/etc/models"]),
        ("path: models/policy", "path: .git/hooks", 4, ["path"]),
        ("path: models/policy", "path: 'models\\policy'", 4, ["path"]),
        ("path: models/policy", "path: ''", 4, ["path"]),
        ("path: models/policy", "path: .", 4, ["path"]),
        ("archived: [v2025-06-01--09h00]", "archived: [v2025-06-01--09h00, v9]", 11, ["archived", "v9"]),
        ("keep_last: 20", "keep_last: -3", 12, ["keep_last"]),
        ("max_age_days: 90", "max_age_days: soon", 12, ["max_age_days"]),
        ("version: 1", "version: 2", 1, ["version"]),
        ("  policy:", "  Policy:", 3, ["Policy"]),
        ("  policy:", "  'my policy':", 3, ["my policy"]),
        ("  policy:", '  "policy\\n":', 3, ["policy"]),
        ("  policy:", "  " + "p" * 101 + ":", 3, ["p" * 101]),
    ],
)
def test_validation_errors_name_the_line(old: str, new: str, line: int, words: list[str]) -> None:
    text = BASE.replace(old, new, 1)
    assert text != BASE
    err = manifest_error(text)
    assert err.line == line, str(err)
    assert str(err).startswith(f"models.yaml:{line}: ")
    for word in words:
        assert word in err.problem


def test_a_missing_path_is_reported_at_the_model() -> None:
    err = manifest_error(BASE.replace("    path: models/policy\n", ""))
    assert err.line == 3
    assert "path" in err.problem


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "42\n"])
def test_a_manifest_that_is_not_a_mapping_is_rejected(text: str) -> None:
    err = manifest_error(text)
    assert "mapping" in err.problem


@pytest.mark.parametrize(
    "text",
    [
        "version: &v 1\nmodels:\n  a:\n    path: *v\n",
        "version: 1\nmodels:\n  a: &entry\n    path: models/a\n  b: *entry\n",
        "version: 1\nbase: &b {path: x}\nmodels:\n  a:\n    <<: *b\n",
        "version: 1\nmodels:\n  a:\n    path: p\n    archived: &l [v2025-01-01--00h00]\n  b:\n"
        "    path: q\n    archived: *l\n",
    ],
)
def test_anchors_and_aliases_are_rejected(text: str) -> None:
    err = manifest_error(text)
    assert "alias" in err.problem


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("version: 1\nmodels:\n  policy: [\n", 4),
        ("version: 1\nmodels:\n  policy:\n    path: x\n   stages: {}\n", 5),
        ("version: 1\nversion: 1\n", 2),  # duplicate key
        ("version: 1\nmodels:\n\tpolicy: {}\n", 3),  # a tab
        ("version: 1\nmodels: {policy: {path: x}\n", 3),
        ('version: 1\nmodels:\n  "policy: {}\n', 4),
    ],
)
def test_invalid_yaml_is_a_manifest_error_with_a_line(text: str, line: int) -> None:
    err = manifest_error(text)
    assert "invalid YAML" in err.problem
    assert err.line == line, str(err)


def test_a_manifest_over_one_mebibyte_is_rejected() -> None:
    assert MAX_MANIFEST_BYTES == 1 << 20
    padding = "#" * 79 + "\n"
    big = EXAMPLE + padding * (MAX_MANIFEST_BYTES // len(padding) + 1)
    assert len(big.encode()) > MAX_MANIFEST_BYTES
    err = manifest_error(big)
    assert str(MAX_MANIFEST_BYTES) in err.problem
    assert err.line is None


def test_the_limit_is_inclusive(monkeypatch: pytest.MonkeyPatch) -> None:
    # Parsing a whole MiB of YAML is slow, so the boundary is checked with a smaller limit.
    monkeypatch.setattr("gitreg.manifest.MAX_MANIFEST_BYTES", len(EXAMPLE.encode()))
    assert loads(EXAMPLE).model.models["policy"].path == "models/policy"
    assert "larger" in manifest_error(EXAMPLE + "\n").problem


def test_the_limit_counts_bytes_not_characters() -> None:
    text = "# " + "é" * (MAX_MANIFEST_BYTES // 2) + "\nversion: 1\n"
    assert len(text) <= MAX_MANIFEST_BYTES < len(text.encode())
    assert str(MAX_MANIFEST_BYTES) in manifest_error(text).problem


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("version: 1\nmodels:\n  p: !!python/object:os.system {path: x}\n", 3),
        ("version: 1\nmodels:\n  p:\n    path: !foo x\n", 4),
        ("version: !!binary AQ==\n", 1),
        ("version: 1\nmodels:\n  p:\n    path: !!str models/p\n", 4),  # even the plain ones
    ],
)
def test_custom_tags_are_rejected(text: str, line: int) -> None:
    err = manifest_error(text)
    assert "tag" in err.problem
    assert err.line == line


@FAST
@given(st.text(max_size=120))
@example("\ud800")
@example("version: 1\nmodels:\n  p:\n    path: \ud800\n")
@example("version: 1\nmodels:\n  p: {path: x, stages: {? [a]: v2025-01-01--00h00}}\n")
def test_any_text_loads_or_raises_a_manifest_error(text: str) -> None:
    try:
        m = loads(text)
    except ManifestError as e:
        assert e.line is None or e.line >= 1
        return
    assert isinstance(m.model, ManifestModel)
    assert loads(m.dumps()).model == m.model


# -- files ----------------------------------------------------------------------------------------
def test_load_of_a_missing_file_is_an_empty_manifest(tmp_path: Path) -> None:
    m = load(tmp_path / "models.yaml")
    assert m.model.models == {}
    assert m.dumps() == new_manifest_text()
    assert not (tmp_path / "models.yaml").exists()


def test_load_and_save(tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    path.write_text(EXAMPLE)
    m = load(path)
    assert m.model.models["policy"].canary is not None
    m.ensure_model("other", "models/other")
    m.save(path)
    assert path.read_text() == EXAMPLE + "  other:\n    path: models/other\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models.yaml"]


def test_load_names_the_file_in_errors(tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    path.write_bytes(b"version: 1\nmodels:\n  p:\n    path: /abs\n")
    with pytest.raises(ManifestError) as info:
        load(path)
    assert info.value.path == "models.yaml"
    assert info.value.line == 4


def test_load_rejects_non_utf8(tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    path.write_bytes(b"version: 1\n# \xff\xfe\n")
    with pytest.raises(ManifestError) as info:
        load(path)
    assert "UTF-8" in info.value.problem


def test_atomic_write_replaces_the_content_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    path.write_bytes(b"old content that is longer than the new one\n")
    path.chmod(0o600)
    atomic_write(path, b"new\n")
    assert path.read_bytes() == b"new\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # the mode is kept
    assert [p.name for p in tmp_path.iterdir()] == ["models.yaml"]


def test_atomic_write_creates_a_new_file(tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    atomic_write(path, b"x: 1\n")
    assert path.read_bytes() == b"x: 1\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert os.listdir(tmp_path) == ["models.yaml"]


def test_a_failed_atomic_write_keeps_the_old_file_and_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    path.write_bytes(b"old\n")
    with pytest.raises(TypeError):
        atomic_write(path, "not bytes")  # type: ignore[arg-type]
    assert path.read_bytes() == b"old\n"
    assert os.listdir(tmp_path) == ["models.yaml"]


# -- round-trip property ------------------------------------------------------------------------
versions = st.builds(
    VersionName,
    st.datetimes(timezones=st.just(UTC)).map(lambda d: d.replace(second=0, microsecond=0)),
    st.integers(1, 12),
).map(format_version)
model_names = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,15}", fullmatch=True) | st.sampled_from(
    ["policy", "1", "010", "1e3", "0x1f", "null", "true", "yes", "on", "1_000", "1.5", "nan", "inf"]
)
stage_names = st.from_regex(r"[a-z][a-z0-9_-]{0,10}", fullmatch=True).filter(lambda s: s != "archived") | (
    st.sampled_from(["production", "staging", "null", "true", "no", "off", "nan", "inf"])
)
paths = st.lists(
    st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_. -]{0,8}", fullmatch=True), min_size=1, max_size=3
).map("/".join)  # segments never start with "." (no "..", no ".git")
# Percentages as people write them. ruamel rewrites a float like 9.830329882232776e-05 as
# 9.830329882232775e-05 (another number) when it dumps: a ruamel limitation, not tested here.
traffic = st.integers(0, 100) | st.integers(0, 10**6).map(lambda n: n / 10**4)
entries = st.fixed_dictionaries(
    {"path": paths},
    optional={
        "stages": st.dictionaries(stage_names, versions, max_size=3),
        "canary": st.fixed_dictionaries({"version": versions, "traffic": traffic}),
        "archived": st.lists(versions, max_size=3),
        "retention": st.fixed_dictionaries(
            {}, optional={"keep_last": st.integers(0, 10**6), "max_age_days": st.integers(0, 10**4)}
        ),
    },
)
documents = st.fixed_dictionaries(
    {"version": st.just(1), "models": st.dictionaries(model_names, entries, max_size=3)},
    optional={
        "metrics": st.fixed_dictionaries(
            {},
            optional={
                "higher_is_better": st.lists(st.text("abc_", min_size=1, max_size=5), max_size=3),
                "lower_is_better": st.lists(st.text("xyz_", min_size=1, max_size=5), max_size=3),
            },
        )
    },
)


def as_block_yaml(doc: dict[str, Any]) -> str:
    buf = io.StringIO()
    round_trip_yaml().dump(doc, buf)
    return buf.getvalue()


@SOME
@given(documents, st.sampled_from(["block", "json"]))
def test_valid_manifests_survive_load_dump_load(doc: dict[str, Any], style: str) -> None:
    text = as_block_yaml(doc) if style == "block" else json.dumps(doc) + "\n"
    first = loads(text)
    assert first.model == ManifestModel.model_validate(doc)  # read as written
    dumped = first.dumps()
    assert dumped == text  # nothing changes what it does not edit
    second = loads(dumped)
    assert second.model == first.model
    assert second.dumps() == dumped


@SOME
@given(documents, model_names, paths)
def test_ensure_model_on_any_manifest_only_adds_lines(doc: dict[str, Any], name: str, path: str) -> None:
    text = as_block_yaml(doc)
    m = loads(text)
    changed = m.ensure_model(name, path)
    assert changed == (name not in doc["models"])
    out = m.dumps()
    removed, added = diff_ops(text, out)
    if not changed:
        assert out == text
    elif doc["models"]:
        assert removed == []
        assert len(added) == 2
        assert added[0].startswith("  ") and added[1].startswith("    path: ")
    else:  # `models: {}` grows as a block
        assert removed == ["models: {}"]
        assert added[0] == "models:" and len(added) == 3
    after: Manifest = loads(out)
    assert after.model == m.model
    assert name in after.model.models
    before = ManifestModel.model_validate(doc)
    assert {k: v for k, v in after.model.models.items() if k != name or not changed} == before.models


# -- strict types: nothing is coerced ----------------------------------------------------------
@pytest.mark.parametrize(
    ("traffic", "said"),
    [
        ("true", "not true"),
        ("false", "not false"),
        ('"50"', "not the string '50' (write it without quotes)"),
        ("'10.5'", "not the string '10.5'"),
        ("101", "not 101"),
        ("100.5", "not 100.5"),
        ("-1", "not -1"),
        ("null", "not null"),
        ("", "not null"),
        ("[50]", "not a list"),
    ],
)
def test_canary_traffic_is_a_number_from_0_to_100_never_coerced(traffic: str, said: str) -> None:
    err = manifest_error(BASE.replace("traffic: 10", f"traffic: {traffic}"))
    assert err.line == 10, str(err)
    assert err.problem.startswith("models.policy.canary.traffic: must be a number from 0 to 100")
    assert said in err.problem
    assert "\n" not in str(err)


@pytest.mark.parametrize(
    ("traffic", "share"), [("0", 0), ("100", 100), ("1.5", 1.5), ("0x10", 16), ("33.3", 33.3)]
)
def test_a_number_in_range_is_a_traffic_share(traffic: str, share: float) -> None:
    canary = loads(BASE.replace("traffic: 10", f"traffic: {traffic}")).model.models["policy"].canary
    assert canary is not None and canary.traffic == share and type(canary.traffic) is float


@pytest.mark.parametrize(
    ("old", "new", "line", "said"),
    [
        ("version: 1\n", "version: '1'\n", 1, "version: must be a whole number, not the string '1'"),
        ("version: 1\n", "version: true\n", 1, "version: must be a whole number, not true"),
        ("version: 1\n", "version: 1.0\n", 1, "version: must be a whole number, not 1.0"),
        (
            "production: v2025-07-06--18h51",
            "production: 20250706",
            6,
            "production: must be a string, not 20250706",
        ),
        ("production: v2025-07-06--18h51", "production: true", 6, "production: must be a string, not true"),
        ("production: v2025-07-06--18h51", "production:", 6, "production: must be a string, not null"),
        ("production: v2025-07-06--18h51", "1: v2025-07-06--18h51", 6, "stages.1: must be a string, not 1"),
        ("archived: [v2025-06-01--09h00]", "archived: v2025-06-01--09h00", 11, "archived: must be a list"),
        ("archived: [v2025-06-01--09h00]", "archived: [20250601]", 11, "archived.0: must be a string"),
        ("keep_last: 20", "keep_last: '20'", 12, "keep_last: must be a whole number, not the string '20'"),
        ("keep_last: 20", "keep_last: 20.0", 12, "keep_last: must be a whole number, not 20.0"),
        ("keep_last: 20", "keep_last: true", 12, "keep_last: must be a whole number, not true"),
        ("keep_last: 20", "keep_last: -3", 12, "keep_last: must be at least 0, not -3"),
        ("max_age_days: 90", "max_age_days: 1e2", 12, "max_age_days: must be a whole number, not 100.0"),
        ("path: models/policy", "path: 7", 4, "path: must be a string, not 7"),
        (
            "    stages:\n      production: v2025-07-06--18h51\n      staging: v2025-07-07--10h30\n",
            "    stages: [x]\n",
            5,
            "stages: must be a mapping, not a list",
        ),
    ],
)
def test_every_field_is_strict_in_type(old: str, new: str, line: int, said: str) -> None:
    text = BASE.replace(old, new, 1)
    assert text != BASE
    err = manifest_error(text)
    assert err.line == line, str(err)
    assert said in err.problem, err.problem


@pytest.mark.parametrize(
    ("policy", "said"),
    [
        ("allow_torchscript: 'no'", "allow_torchscript: must be true or false, not the string 'no'"),
        ("allow_torchscript: 0", "allow_torchscript: must be true or false, not 0"),
        ("require_signed: 'true'", "require_signed: must be true or false, not the string 'true'"),
        ("max_bundle_bytes: '1000'", "max_bundle_bytes: must be a whole number, not the string '1000'"),
        ("max_bundle_bytes: 1.5e3", "max_bundle_bytes: must be a whole number, not 1500.0"),
        ("max_bundle_bytes: true", "max_bundle_bytes: must be a whole number, not true"),
        ("architectures: 'a.b:C'", "architectures: must be a list, not the string 'a.b:C'"),
    ],
)
def test_policy_fields_are_strict_in_type(policy: str, said: str) -> None:
    err = manifest_error(BASE + f"policy:\n  {policy}\n")
    assert err.line == 14, str(err)
    assert said in err.problem, err.problem


def test_a_metric_direction_is_a_list_of_strings() -> None:
    err = manifest_error(BASE + "metrics:\n  higher_is_better: [1]\n")
    assert "metrics.higher_is_better.0: must be a string, not 1" in err.problem


# -- one loader: strict UTF-8, limits before the YAML scanner ---------------------------------------
def test_loads_bytes_refuses_non_utf8_with_its_line() -> None:
    with pytest.raises(ManifestError) as caught:
        loads_bytes(BASE.encode() + b"# caf\xe9\n")
    assert caught.value.line == 13
    assert "is not UTF-8" in caught.value.problem and "save it as UTF-8" in str(caught.value)


def test_loads_bytes_reads_what_loads_reads() -> None:
    assert loads_bytes(BASE.encode()).dumps() == loads(BASE).dumps() == BASE


def test_missing_models_names_what_to_write() -> None:
    assert missing_models(loads(BASE)) is None
    assert missing_models(loads(new_manifest_text())) is None
    for text in ("", "version: 1\n", "version: 1\nmodels:\n"):
        said = missing_models(loads(text))
        assert said is not None and "`models: {}`" in said


NESTED_65 = "version: 1\nmodels:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 65))


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("[" * 20_000, 1),
        ("version: 1\nmodels: " + "[" * 20_000 + "]" * 20_000 + "\n", 2),
        ("version: 1\nmodels: " + "{a: " * 20_000 + "}" * 20_000 + "\n", 2),
        ("version: 1\nmodels:\n" + "[\n" * 100, 2 + MAX_MANIFEST_DEPTH),
        ("- " * 5_000 + "x\n", 1),
        (NESTED_65, 2 + MAX_MANIFEST_DEPTH),
        ("version: 1\rmodels: " + "[" * 100, 2),
    ],
    ids=["flow", "flow-closed", "flow-maps", "flow-over-lines", "dashes", "indentation", "cr-breaks"],
)
def test_deep_nesting_is_refused_before_parsing_in_milliseconds(text: str, line: int) -> None:
    started = time.perf_counter()
    err = manifest_error(text)
    assert time.perf_counter() - started < 0.1
    assert err.problem == f"nests deeper than {MAX_MANIFEST_DEPTH} levels (the limit, checked before parsing)"
    assert err.line == line, str(err)
    assert "flatten models.yaml" in str(err) and "\n" not in str(err)


@pytest.mark.parametrize(
    "text",
    [
        "version: 1\nmodels: {}\nmetrics:\n  higher_is_better: ['" + "[" * 100 + "']\n",
        'version: 1\nmodels: {}\nmetrics:\n  higher_is_better: ["' + "{" * 100 + '\\"x"]\n',
        "version: 1 # " + "[" * 100 + "\nmodels: {}\n",
        "version: 1\nmodels:\n  p:\n    path: models/p" + "[" * 100 + "\n",
        "version: 1\nmodels: {}\nmetrics:\n  higher_is_better:\n    - 'it''s " + "[" * 100 + "'\n",
    ],
    ids=["single-quoted", "double-quoted", "comment", "plain-scalar", "quote-in-quote"],
)
def test_brackets_inside_text_do_not_count_as_nesting(text: str) -> None:
    loads(text)  # valid: no limit hit


def test_sixty_four_levels_are_allowed() -> None:
    prescan("a: " + "[" * (MAX_MANIFEST_DEPTH - 1) + "]" * (MAX_MANIFEST_DEPTH - 1) + "\n")


def test_the_line_and_token_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ManifestError) as caught:
        prescan("#\n" * MAX_MANIFEST_LINES + "x: 1\n")
    assert caught.value.problem.startswith(f"has more than {MAX_MANIFEST_LINES} lines")
    with pytest.raises(ManifestError) as caught:
        prescan("a: [" + "1, " * MAX_MANIFEST_TOKENS + "]\n")
    assert caught.value.problem.startswith(f"has more than {MAX_MANIFEST_TOKENS} structural tokens")
    assert caught.value.line == 1
