"""A prototype, for measurement only: what `gitreg list --json --limit 0` costs when written lean
(no typer, no pydantic; json.loads of the tag blocks; only ``passed`` read from the notes; plain
dict rows; the C JSON encoder). Same git calls as gitreg; rows carry the same keys as gitreg's
VersionInfo except that ``validation`` is left as the raw note object. Used by list_whatif.py to
show what the floor ratio could be; not a replacement for gitreg's code.

``--slim`` keeps only what the table shows (version, model, algorithm, status, stages, created_at,
metrics): the output is then ~8x smaller.

Run inside a registry repo:  .venv/bin/python benchmarks/_lean_list.py [--slim] > rows.json
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

BEGIN, END = "-----BEGIN GITREG-----", "-----END GITREG-----"
VERSION = re.compile(r"v(\d{4})-(\d{2})-(\d{2})--(\d{2})h(\d{2})(?:-([2-9]|[1-9]\d+))?")
FIELDS = ("%(refname:strip=2)", "%(objectname)", "%(objecttype)", "%(*objectname)", "%(contents)")
FORMAT = "%00".join(FIELDS) + "%00"


def git(*args: str, stdin: bytes | None = None) -> bytes:
    return subprocess.run(["git", *args], input=stdin, capture_output=True, check=True).stdout


def stages() -> dict[tuple[str, str], list[str]]:
    from ruamel.yaml import YAML

    try:
        with open("models.yaml") as f:
            doc = YAML(typ="safe", pure=True).load(f) or {}
    except FileNotFoundError:
        return {}
    result: dict[tuple[str, str], list[str]] = {}
    for model, entry in (doc.get("models") or {}).items():
        for stage, version in ((entry or {}).get("stages") or {}).items():
            result.setdefault((model, version), []).append(stage)
    return result


def main() -> None:
    out = git("for-each-ref", f"--format={FORMAT}", "refs/tags/v[0-9][0-9][0-9][0-9]-*").decode()
    fields = out.split("\0")
    tags = []
    for i in range(0, len(fields) - len(FIELDS) + 1, len(FIELDS)):
        name, obj, typ, peeled, msg = fields[i : i + len(FIELDS)]
        name = name.lstrip("\n")
        m = VERSION.fullmatch(name)
        if typ != "tag" or m is None:
            continue
        key = (*(int(x) for x in m.groups()[:5]), int(m[6] or 1))
        tags.append((key, name, obj, peeled, msg))
    tags.sort(reverse=True)
    pairs = [line.split() for line in git("notes", "--ref=refs/notes/gitreg", "list").decode().splitlines()]
    blob = git("cat-file", "--batch", stdin="".join(f"{n}\n" for n, _ in pairs).encode())
    notes: dict[str, Any] = {}
    pos = 0
    for _note, target in pairs:
        eol = blob.index(b"\n", pos)
        size = int(blob[pos:eol].split()[2])
        notes[target] = json.loads(blob[eol + 1 : eol + 1 + size])
        pos = eol + 1 + size + 1
    stage_map = stages()
    slim = "--slim" in sys.argv[1:]
    rows: list[dict[str, Any]] = []
    for _key, name, obj, peeled, msg in tags:
        b = msg.find(BEGIN)
        e = msg.find(END, b + 1)
        if b < 0 or e < 0:
            continue
        s = json.loads(msg[b + len(BEGIN) : e])
        if s.get("version") != name:
            continue
        note = notes.get(obj)
        status = "registered" if note is None else ("validated" if note.get("passed") else "failed")
        if slim:
            rows.append(
                {
                    "version": name,
                    "model": s["model"],
                    "algorithm": s["algorithm"],
                    "status": status,
                    "stages": stage_map.get((s["model"], name), []),
                    "created_at": s["created_at"],
                    "metrics": s.get("metrics", {}),
                }
            )
            continue
        rows.append(
            {
                "version": name,
                "model": s["model"],
                "algorithm": s["algorithm"],
                "framework": s["framework"],
                "created_at": s["created_at"],
                "registered_at": s["registered_at"],
                "registered_by": s["registered_by"],
                "status": status,
                "stages": stage_map.get((s["model"], name), []),
                "metrics": s.get("metrics", {}),
                "parameters": s.get("parameters", {}),
                "files": s.get("files", []),
                "message": msg[:b].strip().partition("\n")[2].strip(),
                "commit": peeled,
                "tag_object": obj,
                "lineage": {k: s.get(k) for k in ("data_version", "code_commit", "parent")},
                "description": s.get("description"),
                "env_id": s.get("env_id"),
                "input_shape": s.get("input_shape"),
                "validation": note,
            }
        )
    sys.stdout.write(json.dumps(rows, ensure_ascii=False))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
