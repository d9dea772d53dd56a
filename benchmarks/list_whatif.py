"""Where `gitreg list` spends its time at N versions, stage by stage, next to cheaper ways of
doing each stage: the numbers behind the optimization advice in list_scale's profile.

Builds the same registry as list_scale.py (one real registration + fast-imported version tags
and validation notes), then measures, best of ``--repeat``:

* imports, each in a fresh interpreter (incremental over the previous line);
* the git reads (gitreg's ``for-each-ref`` format vs the floor's; notes list + cat-file);
* parsing the tag blocks: per-tag ``TagSummary.model_validate_json`` (today) vs one batched
  ``TypeAdapter(list[TagSummary]).validate_json`` vs plain ``json.loads``;
* parsing the notes: per-note ``ValidationRecord`` vs ``json.loads`` + ``passed``;
* ``Registry.versions()`` end to end, in-process (imports excluded), and ``versions_json()``
  (what ``gitreg list --json`` runs) cold (no list cache) and warm;
* writing the JSON: gitreg's ``emit_json`` vs ``json.dumps`` of plain dicts.

Run:  .venv/bin/python benchmarks/list_whatif.py [--n 10000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

from _common import isolated_env, machine_info, print_table, run_timed, write_results
from list_scale import build_registry

IMPORT_STEPS = [
    ("python -c pass", "pass"),
    ("+ import typer", "import typer"),
    ("+ import pydantic (BaseModel)", "import typer; from pydantic import BaseModel"),
    ("+ import gitreg.cli", "import typer; from pydantic import BaseModel; import gitreg.cli"),
    (
        "+ import gitreg.registry",
        "import typer; from pydantic import BaseModel; import gitreg.cli; import gitreg.registry",
    ),
]


def best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times = []
    out = None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def measure(repo: Path, env: dict[str, str], n: int, repeat: int) -> list[tuple[str, str, float]]:
    rows: list[tuple[str, str, float]] = []
    # -- imports, each in a fresh interpreter --------------------------------------------------
    prev = 0.0
    for label, code in IMPORT_STEPS:
        s = min(run_timed([sys.executable, "-c", code], env=env).check(label).seconds for _ in range(repeat))
        rows.append(("imports (fresh process, best)", f"{label}  (+{s - prev:.3f}s)", s))
        prev = s

    # -- end to end, fresh processes: gitreg, the lean prototype, the floor --------------------------
    gitreg_cmd = [str(Path(sys.executable).parent / "gitreg"), "list", "--json", "--limit", "0"]
    lean_cmd = [sys.executable, str(Path(__file__).with_name("_lean_list.py"))]
    ref = run_timed(gitreg_cmd, cwd=repo, env=env).check("gitreg list")
    lean = run_timed(lean_cmd, cwd=repo, env=env).check("lean list")
    want = [(r["version"], r["status"]) for r in json.loads(ref.stdout)]
    got = [(r["version"], r["status"]) for r in json.loads(lean.stdout)]
    if want != got or len(want) != n:
        raise SystemExit(f"the lean prototype disagrees with gitreg list ({len(got)} vs {len(want)} rows)")
    floor_git = ["git", "for-each-ref", "--format=%(refname)%00%(contents)", "refs/tags"]
    for label, cmd in [
        ("floor: python -c pass", [sys.executable, "-c", "pass"]),
        ("floor: git for-each-ref %(refname)%00%(contents)", floor_git),
        ("gitreg list --json --limit 0 (console script, warm list cache)", gitreg_cmd),
        ("prototype: benchmarks/_lean_list.py (no typer/pydantic, json.loads)", lean_cmd),
        ("prototype: _lean_list.py --slim (table columns only)", [*lean_cmd, "--slim"]),
        ("gitreg list (table, default --limit 50)", gitreg_cmd[:2]),
    ]:
        s = min(run_timed(cmd, cwd=repo, env=env).check(label).seconds for _ in range(repeat))
        rows.append(("end to end (fresh process, best)", label, s))
    uncached_env = {**env, "GITREG_LIST_CACHE": "0"}
    s = min(
        run_timed(gitreg_cmd, cwd=repo, env=uncached_env).check("uncached").seconds for _ in range(repeat)
    )
    rows.append(("end to end (fresh process, best)", "gitreg list --json --limit 0, GITREG_LIST_CACHE=0", s))
    table_all = [*gitreg_cmd[:2], "--limit", "0"]
    s = run_timed(table_all, cwd=repo, env=env).check("gitreg list --limit 0").seconds
    rows.append(("end to end (fresh process, 1 run)", "gitreg list --limit 0 (rich table of every row)", s))

    # -- in-process stages ------------------------------------------------------------------------
    os.environ.update({k: v for k, v in env.items() if k.startswith(("GIT_", "HOME", "XDG_"))})
    from pydantic import TypeAdapter

    from gitreg import gitrepo
    from gitreg.cli import render
    from gitreg.metadata import (
        TAG_BLOCK_BEGIN,
        TAG_BLOCK_END,
        TagSummary,
        ValidationRecord,
        parse_tag_message,
        parse_validation_note,
    )
    from gitreg.registry import Registry

    floor_cmd = ["git", "for-each-ref", "--format=%(refname)%00%(contents)", "refs/tags"]
    s, _ = best(lambda: subprocess.run(floor_cmd, cwd=repo, capture_output=True, check=True), repeat)
    rows.append(("git reads (in-process)", "floor: for-each-ref %(refname)%00%(contents), captured", s))
    s, _ = best(
        lambda: gitrepo.run_git(["for-each-ref", f"--format={gitrepo._FORMAT}", gitrepo._TAG_GLOB], repo),
        repeat,
    )
    rows.append(("git reads (in-process)", "gitreg: for-each-ref, its 8-field format + glob", s))
    git = gitrepo.GitRepo(repo)
    s, tags = best(git.version_tags, repeat)
    rows.append(("git reads (in-process)", "GitRepo.version_tags() (git + split into TagRecord)", s))
    s, notes = best(git.notes, repeat)
    rows.append(
        ("git reads (in-process)", f"GitRepo.notes() (notes list + cat-file --batch), {len(notes)}", s)
    )

    messages = [t.message for t in tags]
    s, _ = best(lambda: [parse_tag_message(m) for m in messages], repeat)
    rows.append(("parse tag blocks", f"today: parse_tag_message x{len(messages)} (TagSummary per tag)", s))

    def blocks() -> list[str]:
        out = []
        for m in messages:
            b = m.find(TAG_BLOCK_BEGIN)
            e = m.find(TAG_BLOCK_END, b + 1)
            out.append(m[b + len(TAG_BLOCK_BEGIN) : e])
        return out

    s, bl = best(blocks, repeat)
    rows.append(("parse tag blocks", "slice the JSON blocks out of the messages", s))
    batch = TypeAdapter(list[TagSummary])
    s, _ = best(lambda: batch.validate_json("[" + ",".join(bl) + "]"), repeat)
    rows.append(("parse tag blocks", "one TypeAdapter(list[TagSummary]).validate_json", s))
    s, _ = best(lambda: [json.loads(b) for b in bl], repeat)
    rows.append(("parse tag blocks", "json.loads per block (no validation)", s))

    texts = list(notes.values())
    s, _ = best(lambda: [parse_validation_note(t) for t in texts], repeat)
    rows.append(("parse notes", f"today: parse_validation_note x{len(texts)} (ValidationRecord)", s))
    nbatch = TypeAdapter(list[ValidationRecord])
    s, _ = best(lambda: nbatch.validate_json("[" + ",".join(texts) + "]"), repeat)
    rows.append(("parse notes", "one TypeAdapter(list[ValidationRecord]).validate_json", s))
    s, _ = best(lambda: [json.loads(t).get("passed") for t in texts], repeat)
    rows.append(("parse notes", "json.loads per note, read 'passed' only", s))

    reg = Registry(repo)
    s, infos = best(reg.versions, repeat)
    if len(infos) != n:
        raise SystemExit(f"Registry.versions() returned {len(infos)} rows, expected {n}")
    rows.append(("end to end (in-process)", "Registry.versions() (git + parse + rows)", s))
    cache = reg.ctx.list_cache_path()
    assert cache is not None

    def cold() -> bytes:
        cache.unlink(missing_ok=True)
        return reg.versions_json()

    s, text = best(cold, repeat)
    rows.append(("end to end (in-process)", "Registry.versions_json(), cold: parse all, write the cache", s))
    s, warm = best(reg.versions_json, repeat)
    if warm != text:
        raise SystemExit("the warm versions_json() differs from the cold one")
    rows.append(
        ("end to end (in-process)", f"Registry.versions_json(), warm: {len(warm) >> 20} MiB of JSON", s)
    )
    s, _ = best(lambda: reg.versions_json(limit=50), repeat)
    rows.append(("end to end (in-process)", "Registry.versions_json(limit=50), warm", s))

    def emit() -> int:
        buf = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
        with redirect_stdout(buf):
            render.emit_json(infos)
            buf.flush()
        return int(buf.buffer.tell())

    s, size = best(emit, repeat)
    rows.append(
        ("write JSON", f"today: render.emit_json (TypeAdapter.dump_json indent=2), {size >> 20} MiB", s)
    )
    dicts = [i.model_dump(mode="json") for i in infos]
    s, _ = best(lambda: [i.model_dump(mode="json") for i in infos], repeat)
    rows.append(("write JSON", "model_dump(mode=json) per row", s))
    s, _ = best(lambda: json.dumps(dicts), repeat)
    rows.append(("write JSON", "json.dumps of plain dicts, no indent (C encoder)", s))
    s, _ = best(lambda: json.dumps(dicts, indent=2), repeat)
    rows.append(("write JSON", "json.dumps of plain dicts, indent=2 (pure-Python encoder)", s))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10000, help="number of versions (default 10000)")
    ap.add_argument("--repeat", type=int, default=5, help="best of this many runs per line")
    args = ap.parse_args()
    with isolated_env("whatif") as (work, env):
        print(f"N={args.n}: building the registry …", file=sys.stderr)
        repo, _ = build_registry(work, env, args.n)
        rows = measure(repo, env, args.n, args.repeat)
    print_table(
        f"`gitreg list` stage by stage at N={args.n}, best of {args.repeat} (seconds)",
        ["stage", "how", "seconds"],
        [[a, b, f"{c:.3f}"] for a, b, c in rows],
    )
    write_results(
        "list_whatif",
        {
            "benchmark": "list_whatif",
            "machine": machine_info(),
            "n": args.n,
            "repeat": args.repeat,
            "rows": [{"stage": a, "how": b, "seconds": c} for a, b, c in rows],
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
