"""References — `policy@production`, `policy@staging`, `policy@canary`, `policy@latest`,
`policy@vYYYY-MM-DD--HHhMM` — wherever a version is accepted, resolved by one operation
(gitreg.refs) against the checked-out models.yaml or `--ref REF`; `gitreg resolve` says it all."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gitreg.errors import EmptyStage, InvalidReference, InvalidVersionName, ModelNotFound
from gitreg.testing.cli import run_cli
from gitreg.testing.lifecycle import mark_validated
from gitreg.testing.repos import git, promote_pushed, register_pushed
from gitreg.versions import parse_reference

V1 = "v2025-07-01--10h00"
V2 = "v2025-07-02--10h00"
V3 = "v2025-07-03--10h00"


@pytest.fixture
def staged(registry: Any, make_bundle: Callable[..., Path]) -> Any:
    """V1 in production, V2 in staging, V3 the canary at 10 %, all pushed."""
    for i, v in enumerate((V1, V2, V3), 1):
        register_pushed(registry, make_bundle(i), v)
        mark_validated(registry.root, v)
    promote_pushed(registry, V1)
    registry.promote(V2, "staging", direct=True, push=True)
    promote_pushed(registry, V3, canary=10)
    return registry


def resolve(repo: Path, *args: str) -> dict[str, Any]:
    return json.loads(run_cli("-C", str(repo), "resolve", *args, "--json", check=True).stdout)


def test_every_form_resolves_with_what_it_pins_and_the_commit_that_set_it(staged: Any) -> None:
    root = staged.root
    prod = resolve(root, "policy@production")
    assert (prod["model"], prod["stage"], prod["version"], prod["status"]) == (
        "policy",
        "production",
        V1,
        "validated",
    )
    info = staged.get(V1)
    assert prod["commit"] == info.commit and prod["tag_object"] == info.tag_object
    assert [(f["path"], f["md5"], f["size"]) for f in prod["files"]] == [
        (f.path, f.md5, f.size) for f in info.files
    ]
    set_by = prod["set_by"]
    assert f"{V1}" in git(root, "show", "-s", "--format=%s", set_by)  # the promotion's commit
    assert git(root, "show", f"{set_by}:models.yaml").count(f"production: {V1}") == 1
    assert resolve(root, "policy@staging")["version"] == V2
    canary = resolve(root, "policy@canary")
    assert (canary["version"], canary["traffic"]) == (V3, 10.0)
    latest = resolve(root, "policy@latest")
    assert (latest["version"], latest["stage"], latest["set_by"]) == (V3, "latest", None)
    pinned = resolve(root, f"policy@{V2}")
    assert (pinned["version"], pinned["stage"]) == (V2, None)
    assert resolve(root, V2)["model"] == "policy"
    human = run_cli("-C", str(root), "resolve", "policy@production", check=True).stdout
    assert human.splitlines()[0].startswith(f"{V1}  policy@production")
    assert f"set by {set_by[:12]}" in human


def test_commands_that_take_a_version_take_a_reference(staged: Any, tmp_path: Path) -> None:
    root = staged.root
    shown = json.loads(run_cli("-C", str(root), "show", "policy@production", "--json", check=True).stdout)
    assert shown["version"] == V1
    out = tmp_path / "pulled"
    pulled = json.loads(
        run_cli("-C", str(root), "pull", "policy@staging", "--out", str(out), "--json", check=True).stdout
    )
    assert pulled["version"] == V2 and (out / "metadata.json").exists()
    compared = json.loads(
        run_cli("-C", str(root), "compare", "policy@production", "policy@canary", "--json", check=True).stdout
    )
    assert compared["versions"] == [V1, V3]
    tree = json.loads(run_cli("-C", str(root), "lineage", "policy@latest", "--json", check=True).stdout)
    assert tree["version"] == V3
    run_cli("-C", str(root), "promote", "policy@staging", "production", "--direct", check=True)
    assert f"production: {V2}" in (root / "models.yaml").read_text()
    # the Python API takes them too
    assert staged.get("policy@production").version == V2
    assert staged.resolve("policy@production").stage == "production"


def test_ref_resolves_against_models_yaml_at_a_commit(staged: Any) -> None:
    root = staged.root
    before = git(root, "rev-parse", "HEAD")
    promote_pushed(staged, V2)
    assert resolve(root, "policy@production")["version"] == V2
    old = resolve(root, "policy@production", "--ref", before)
    assert (old["version"], old["manifest_ref"]) == (V1, before)
    shown = json.loads(
        run_cli("-C", str(root), "show", "policy@production", "--ref", before, "--json", check=True).stdout
    )
    assert shown["version"] == V1
    bad = run_cli("-C", str(root), "resolve", "policy@production", "--ref", "no-such-branch")
    assert bad.returncode == 1 and "--ref no-such-branch: no such revision" in bad.stderr


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("nope@production", "no model 'nope'"),
        ("policy@archived", "archived is a list of versions"),
        ("policy@", "the stage after @ is empty"),
        ("@production", "the model name before @ is empty"),
        ("policy@Prod!", "neither a stage nor a version name"),
        ("Bad Model@production", "is not a model name"),
        ("v1.0", "is not a version name"),
        ("policy@v2099-01-01--00h00", "no version 'v2099-01-01--00h00'"),
    ],
)
def test_a_bad_reference_is_one_line_exit_1(staged: Any, text: str, said: str) -> None:
    proc = run_cli("-C", str(staged.root), "resolve", text)
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("error:") and said in line, line


def test_an_empty_stage_says_which_and_how_to_fill_it(
    registry: Any, make_bundle: Callable[..., Path]
) -> None:
    register_pushed(registry, make_bundle(1), V1)
    with pytest.raises(EmptyStage) as e:
        registry.resolve("policy@production")
    assert e.value.model == "policy" and e.value.stage == "production"
    assert "gitreg promote VERSION production" in e.value.hint
    with pytest.raises(EmptyStage) as e:
        registry.version_of("policy@canary")
    assert "--canary" in e.value.hint
    with pytest.raises(ModelNotFound):
        registry.resolve("ranker@latest")
    with pytest.raises(InvalidReference):
        registry.resolve(f"ranker@{V1}")  # a version of another model
    with pytest.raises(InvalidReference):
        registry.get(f"ranker@{V1}")  # every command, not only resolve


def test_the_grammar() -> None:
    assert parse_reference(V1).model is None and parse_reference(V1).selector == V1
    ref = parse_reference(f"policy@{V1}")
    assert (ref.model, ref.selector, ref.is_version) == ("policy", V1, True)
    ref = parse_reference("my-model.v2@staging")
    assert (ref.model, ref.selector, ref.is_version) == ("my-model.v2", "staging", False)
    with pytest.raises(InvalidVersionName):
        parse_reference("production")
    with pytest.raises(InvalidReference):
        parse_reference("policy@production@x")
    long = "a" * 500
    with pytest.raises(InvalidReference) as e:
        parse_reference(f"{long}@production")
    assert len(e.value.message) < 200  # untrusted text is shortened, not echoed whole
