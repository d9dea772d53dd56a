"""`gitreg list`, `show` and `compare` end to end: the real CLI on a real registry with several
versions, two models, a stage set by hand in models.yaml, validation notes and foreign tags."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gitreg.testing.bundles import write_bundle
from gitreg.testing.cli import run_cli
from gitreg.testing.clock import FixedClock
from gitreg.testing.env import isolated_home
from gitreg.testing.repos import git

A = "v2025-07-06--18h51"  # policy, DQN
B = "v2025-07-06--18h51-2"  # policy, PPO, parent A; production
C = "v2025-07-06--19h51"  # other, SAC
D = "v2025-07-06--20h51"  # policy, DQN, an extra file; staging
NEWEST_FIRST = [D, C, B, A]


def meta(algo: str, metrics: dict[str, float], params: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "algo": algo,
        "framework": "torchscript",
        "created_at": "2025-07-06T18:00:00+00:00",
        "metrics": metrics,
        "hyperparameters": params,
        "input_shape": [4],
        **extra,
    }


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built once per module (read-only for the tests that use it directly; copy it to mutate)."""
    from gitreg.registry import Registry

    base = tmp_path_factory.mktemp("populated")
    repo = base / "registry"
    with isolated_home(base / "home"):
        Registry.init(repo, remote=str(base / "dvc-remote"), ci="none")
        clock = FixedClock(datetime(2025, 7, 6, 18, 51, 23, tzinfo=UTC))
        reg = Registry(repo, clock=clock)
        bundles = base / "bundles"
        plan = [
            (
                "policy",
                meta(
                    "DQN",
                    {"reward": 100.0, "loss": 0.30, "sharpe": 1.5},
                    {"lr": 0.001, "gamma": 0.99, "layers": [16]},
                    data_version="data-2025-07-01",
                    code_commit="abc1234",
                    description="baseline",
                ),
                0,
                {},
            ),
            (
                "policy",
                meta(
                    "PPO",
                    {"reward": 120.0, "loss": 0.40, "sharpe": 1.2},
                    {"lr": 0.0005, "gamma": 0.99, "layers": [16]},
                    parent=A,
                    data_version="data-2025-07-02",
                ),
                0,
                {},
            ),
            ("other", meta("SAC", {"reward": 50.0, "loss": 0.1}, {"lr": 0.001, "gamma": 0.95}), 60, {}),
            (
                "policy",
                meta("DQN", {"reward": 110.0, "loss": 0.35, "sharpe": 1.4}, {"lr": 0.001, "gamma": 0.99}),
                60,
                {"extras/vocab.txt": b"alpha\nbeta\n"},
            ),
        ]
        made = []
        for i, (model, metadata, advance, extras) in enumerate(plan):
            clock.advance(minutes=advance)
            bundle = write_bundle(bundles / f"b{i}", i, metadata=metadata, extra_files=extras)
            made.append(reg.register(bundle, model).version)
        assert made == [A, B, C, D]
        # A stage set by hand, as a reviewed pull request would.
        manifest = repo / "models.yaml"
        text = manifest.read_text()
        assert "    path: models/policy\n" in text
        manifest.write_text(
            text.replace(
                "    path: models/policy\n",
                f"    path: models/policy\n    stages:\n      production: {B}\n      staging: {D}\n",
            )
        )
        git(repo, "commit", "-q", "-am", "promote by hand")
    return repo


@pytest.fixture
def copy(populated: Path, tmp_path: Path) -> Path:
    repo = tmp_path / "registry"
    shutil.copytree(populated, repo, symlinks=True)
    return repo


def list_json(repo: Path, *args: str) -> list[dict[str, Any]]:
    proc = run_cli("list", "--json", *args, cwd=repo)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    rows = json.loads(proc.stdout)
    assert isinstance(rows, list)
    return rows


def assert_refused(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error:")
    for needle in needles:
        assert needle in lines[0], lines[0]


def add_note(repo: Path, version: str, record: dict[str, Any]) -> None:
    obj = git(repo, "rev-parse", f"refs/tags/{version}")
    git(repo, "notes", "--ref=refs/notes/gitreg", "add", "-f", "-m", json.dumps(record), obj)


# -- list ----------------------------------------------------------------------------------------------
def test_list_json_rows_newest_first(populated: Path) -> None:
    rows = list_json(populated)
    assert [r["version"] for r in rows] == NEWEST_FIRST
    for row in rows:
        assert {"version", "model", "algorithm", "created_at", "status", "stages", "metrics"} <= set(row)
        assert row["status"] == "registered"
        datetime.fromisoformat(row["created_at"])
    by = {r["version"]: r for r in rows}
    assert by[A]["model"] == "policy" and by[A]["algorithm"] == "DQN"
    assert by[B]["algorithm"] == "PPO"
    assert by[C]["model"] == "other" and by[C]["algorithm"] == "SAC"
    assert by[B]["metrics"] == {"reward": 120.0, "loss": 0.40, "sharpe": 1.2}
    assert by[B]["stages"] == ["production"]
    assert by[D]["stages"] == ["staging"]
    assert by[A]["stages"] == [] and by[C]["stages"] == []


def test_list_json_rows_are_whole_version_infos(copy: Path) -> None:
    """Every VersionInfo field, as pydantic writes it (the list cache must not slim rows)."""
    from pydantic import TypeAdapter

    from gitreg.registry import Registry, VersionInfo

    add_note(copy, B, {"schema": 1, "version": B, "passed": True, "checked_at": "2025-07-08T00:00:00Z"})
    rendered = TypeAdapter(list[VersionInfo]).dump_json(Registry(copy).versions(), indent=2, by_alias=True)
    expected = rendered + b"\n"
    for _ in ("cold", "warm"):
        gitreg = str(Path(sys.executable).parent / "gitreg")
        proc = subprocess.run([gitreg, "list", "--json"], cwd=copy, capture_output=True, check=False)
        assert proc.returncode == 0 and proc.stdout == expected, proc.stderr
    rows = json.loads(expected)
    assert all(set(r) == set(VersionInfo.model_fields) for r in rows)
    assert next(r for r in rows if r["version"] == B)["validation"]["passed"] is True


def test_list_table(populated: Path) -> None:
    proc = run_cli("list", cwd=populated)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:3] == ["VERSION", "MODEL", "ALGORITHM"]
    body = [line.split() for line in lines[1:] if line.strip()]
    assert [cells[0] for cells in body] == NEWEST_FIRST
    row_b = next(cells for cells in body if cells[0] == B)
    assert row_b[1:4] == ["policy", "PPO", "registered"]
    assert "production" in row_b
    assert "reward=120" in lines[1 + NEWEST_FIRST.index(B)]


def test_list_limit(populated: Path) -> None:
    assert [r["version"] for r in list_json(populated, "--limit", "2")] == [D, C]
    assert [r["version"] for r in list_json(populated, "--limit", "1")] == [D]
    assert [r["version"] for r in list_json(populated, "--limit", "0")] == NEWEST_FIRST


def test_list_model_filter(populated: Path) -> None:
    assert [r["version"] for r in list_json(populated, "--model", "policy")] == [D, B, A]
    assert [r["version"] for r in list_json(populated, "--model", "other")] == [C]
    # Filters combine with --limit: the newest N of that model.
    assert [r["version"] for r in list_json(populated, "--model", "policy", "--limit", "2")] == [D, B]


def test_list_stage_filter(populated: Path) -> None:
    assert [r["version"] for r in list_json(populated, "--stage", "production")] == [B]
    assert [r["version"] for r in list_json(populated, "--stage", "staging")] == [D]
    assert list_json(populated, "--stage", "canary") == []


def test_list_unknown_status_is_refused(populated: Path) -> None:
    assert_refused(run_cli("list", "--status", "approved", cwd=populated), "approved")


def test_list_empty_registry(repo_dir: Path) -> None:
    assert list_json(repo_dir) == []
    proc = run_cli("list", cwd=repo_dir)
    assert proc.returncode == 0
    assert "No versions" in proc.stdout


@pytest.mark.slow
def test_list_status_filter_with_a_recorded_validation(copy: Path) -> None:
    from gitreg.registry import Registry

    record = Registry(copy).validate(B, record=True)
    assert record.passed, record
    # A failing record, written the way CI would write one.
    add_note(
        copy,
        C,
        {
            "schema": 1,
            "version": C,
            "passed": False,
            "checked_at": "2025-07-07T00:00:00Z",
            "error": "forward pass failed",
        },
    )

    assert [r["version"] for r in list_json(copy, "--status", "validated")] == [B]
    assert [r["version"] for r in list_json(copy, "--status", "failed")] == [C]
    assert [r["version"] for r in list_json(copy, "--status", "registered")] == [D, A]
    assert [r["version"] for r in list_json(copy, "--status", "validated", "--stage", "production")] == [B]
    shown = json.loads(run_cli("show", B, "--json", cwd=copy, check=True).stdout)
    assert shown["status"] == "validated"
    assert shown["validation"]["passed"] is True
    assert {c["name"] for c in shown["validation"]["checks"]} >= {"digests", "metadata", "load"}
    table = run_cli("list", cwd=copy, check=True).stdout
    assert any(line.split()[0] == B and "validated" in line for line in table.splitlines()[1:])


def test_foreign_and_fake_tags_are_ignored(copy: Path) -> None:
    message = git(copy, "for-each-ref", "--format=%(contents)", f"refs/tags/{A}")
    head = git(copy, "rev-parse", "HEAD")

    def annotated(name: str, text: str) -> None:
        subprocess.run(
            ["git", "tag", "-a", "--cleanup=verbatim", "-F", "-", name, head],
            cwd=copy,
            input=text,
            text=True,
            check=True,
        )

    git(copy, "tag", "v2030-01-01--00h00")  # lightweight, looks like a version
    annotated("v2030-01-02--00h00", "just a release note\n")  # annotated, no block
    annotated("v2030-01-03--00h00", message)  # a copied block that names another version
    annotated("v2030-01-04--00h00", message.replace('"model"', '"model', 1))  # broken block
    annotated("v2030-13-01--00h00", message.replace(A, "v2030-13-01--00h00"))  # month 13
    annotated("v2030-01-05--00h00-1", message.replace(A, "v2030-01-05--00h00-1"))  # no -1 suffix
    git(copy, "tag", "v1.0")
    annotated("release-2025", "release\n")

    assert [r["version"] for r in list_json(copy)] == NEWEST_FIRST
    table = run_cli("list", cwd=copy)
    assert table.returncode == 0 and table.stderr == ""
    assert "v2030" not in table.stdout
    for fake in ("v2030-01-01--00h00", "v2030-01-03--00h00"):
        assert_refused(run_cli("show", fake, cwd=copy), fake)


# -- show ----------------------------------------------------------------------------------------------
def test_show_json(populated: Path) -> None:
    data = json.loads(run_cli("show", B, "--json", cwd=populated, check=True).stdout)
    assert data["version"] == B
    assert data["model"] == "policy"
    assert data["algorithm"] == "PPO"
    assert data["metrics"] == {"reward": 120.0, "loss": 0.40, "sharpe": 1.2}
    assert data["parameters"] == {"lr": 0.0005, "gamma": 0.99, "layers": [16]}
    assert data["status"] == "registered"
    assert data["stages"] == ["production"]
    assert data["lineage"]["parent"] == A
    assert data["lineage"]["data_version"] == "data-2025-07-02"
    assert data["commit"] == git(populated, "rev-parse", f"{B}^{{commit}}")
    files = {f["path"]: f for f in data["files"]}
    assert set(files) == {"policy.pt", "metadata.json"}
    for f in files.values():
        assert len(f["md5"]) == 32 and f["size"] > 0
    pointer = git(populated, "show", f"{B}:models/policy/policy.pt.dvc")
    assert files["policy.pt"]["md5"] in pointer
    blob = subprocess.run(
        ["git", "show", f"{B}:models/policy/metadata.json"], cwd=populated, capture_output=True, check=True
    ).stdout
    assert files["metadata.json"]["size"] == len(blob)

    first = json.loads(run_cli("show", A, "--json", cwd=populated, check=True).stdout)
    assert first["lineage"] == {"data_version": "data-2025-07-01", "code_commit": "abc1234", "parent": None}
    assert first["description"] == "baseline"
    extra = json.loads(run_cli("show", D, "--json", cwd=populated, check=True).stdout)
    assert "extras/vocab.txt" in {f["path"] for f in extra["files"]}
    assert extra["stages"] == ["staging"]


def test_show_table(populated: Path) -> None:
    proc = run_cli("show", B, cwd=populated, check=True)
    out = proc.stdout
    assert out.splitlines()[0].startswith(f"policy {B}")
    assert "production" in out.splitlines()[0]
    for needle in ("PPO", "policy.pt", "metadata.json", "reward", "lr", A):
        assert needle in out, needle


@pytest.mark.parametrize(
    ("name", "needle"),
    [("v2000-01-01--00h00", "no version"), ("latest", "not a version name"), ("v2025-13-01--00h00", "")],
)
def test_show_unknown_or_malformed(populated: Path, name: str, needle: str) -> None:
    assert_refused(run_cli("show", name, "--json", cwd=populated), name, needle)


# -- compare -------------------------------------------------------------------------------------------
def test_compare_json_winners_and_parameters(populated: Path) -> None:
    data = json.loads(run_cli("compare", A, B, "--json", cwd=populated, check=True).stdout)
    assert data["versions"] == [A, B]
    assert data["models"] == {A: "policy", B: "policy"}
    rows = {m["name"]: m for m in data["metrics"]}
    assert (rows["reward"]["direction"], rows["reward"]["winner"]) == ("higher", B)
    assert (rows["loss"]["direction"], rows["loss"]["winner"]) == ("lower", A)
    assert (rows["sharpe"]["direction"], rows["sharpe"]["winner"]) == ("higher", A)
    assert rows["reward"]["values"] == {A: 100.0, B: 120.0}
    params = {p["name"]: p for p in data["parameters"]}
    assert params["lr"]["differs"] is True
    assert params["lr"]["values"] == {A: 0.001, B: 0.0005}
    assert params["gamma"]["differs"] is False
    assert params["layers"]["differs"] is False


def test_compare_three_versions_across_models(populated: Path) -> None:
    data = json.loads(run_cli("compare", A, B, C, "--json", cwd=populated, check=True).stdout)
    rows = {m["name"]: m for m in data["metrics"]}
    assert rows["reward"]["winner"] == B
    assert rows["loss"]["winner"] == C
    assert rows["sharpe"]["values"][C] is None  # C has no sharpe: no crash, not a winner
    assert rows["sharpe"]["winner"] == A
    params = {p["name"]: p for p in data["parameters"]}
    assert params["gamma"]["differs"] is True
    assert params["layers"]["values"][C] is None


def test_compare_table(populated: Path) -> None:
    out = run_cli("compare", A, B, cwd=populated, check=True).stdout
    reward = next(line for line in out.splitlines() if line.strip().startswith("reward"))
    assert "120 ★" in reward and "100 ★" not in reward
    loss = next(line for line in out.splitlines() if line.strip().startswith("loss"))
    assert "0.3 ★" in loss
    assert "lr" in out and "parameters that differ" in out
    assert not any(line.strip().startswith("gamma") for line in out.splitlines())


def test_compare_direction_override_in_models_yaml(copy: Path) -> None:
    manifest = copy / "models.yaml"
    manifest.write_text(manifest.read_text() + "metrics:\n  lower_is_better: [reward]\n")
    git(copy, "commit", "-q", "-am", "reward: lower is better here")

    data = json.loads(run_cli("compare", A, B, "--json", cwd=copy, check=True).stdout)
    rows = {m["name"]: m for m in data["metrics"]}
    assert (rows["reward"]["direction"], rows["reward"]["winner"]) == ("lower", A)
    assert (rows["loss"]["direction"], rows["loss"]["winner"]) == ("lower", A)  # others unchanged
    assert rows["sharpe"]["winner"] == A


def test_compare_refusals(populated: Path) -> None:
    assert_refused(run_cli("compare", A, "v2000-01-01--00h00", cwd=populated), "v2000-01-01--00h00")
    assert_refused(run_cli("compare", A, "nonsense", "--json", cwd=populated), "nonsense")
    assert_refused(run_cli("compare", A, cwd=populated), "two versions")
    assert_refused(run_cli("compare", A, A, cwd=populated), "twice")


def test_list_outside_a_registry_says_so(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    subprocess.run(["git", "init", "-q", str(plain)], check=True)
    proc = run_cli("list", cwd=plain)
    assert proc.returncode == 1
    assert "not a gitreg registry" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
