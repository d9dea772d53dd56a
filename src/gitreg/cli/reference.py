"""The CLI reference page, docs/cli.md, rendered from the typer app itself so that it cannot drift.

``make docs-cli`` (``python -m gitreg.cli.reference docs/cli.md``) writes it;
``tests/cli/test_docs.py`` fails when the committed page differs from a fresh render. Everything
comes from typer's public objects (``typer.main.get_command`` gives the command tree,
``typer.Context`` a context for each command): each command's usage line, help text, and its
arguments and options with the very help records ``--help`` prints.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer
import typer.core
import typer.main

HEADER = """\
# CLI reference

<!-- Generated from the commands themselves by `make docs-cli` (python -m gitreg.cli.reference
docs/cli.md): do not edit by hand. tests/cli/test_docs.py fails when this page and the CLI differ. -->

Every command below is also `gitreg COMMAND --help`. The global options come before the
command: `gitreg -C path/to/repo list --json`.
"""


def _text(s: str) -> str:
    """Help text as Markdown: nothing in it is read as markup or splits a table cell; its
    `code spans` stay code (they only need their pipes escaped)."""
    parts = " ".join(s.split()).split("`")
    for i, part in enumerate(parts):
        pairs = (
            [("|", "\\|")]
            if i % 2
            else [("\\", "\\\\"), ("|", "\\|"), ("*", "\\*"), ("_", "\\_"), ("<", "&lt;")]
        )
        escaped = part
        for char, replacement in pairs:
            escaped = escaped.replace(char, replacement)
        parts[i] = escaped
    return "`".join(parts)


def _code(s: str) -> str:
    return f"`{s}`" if "`" not in s else f"`` {s} ``"


def _help(command: Any) -> str:
    """The command's help as paragraphs (click's ``\\b`` no-rewrap marker dropped)."""
    paragraphs = [p.replace("\b", "").strip() for p in (command.help or "").strip().split("\n\n")]
    return "\n\n".join(_text(p) for p in paragraphs if p)


def _parameters(ctx: typer.Context) -> list[str]:
    arguments: list[str] = []
    options: list[str] = []
    for param in ctx.command.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is None:  # hidden
            continue
        row = f"| {_code(record[0])} | {_text(record[1])} |"
        (arguments if isinstance(param, typer.core.TyperArgument) else options).append(row)
    lines: list[str] = []
    if arguments:
        lines += ["| argument | description |", "| --- | --- |", *arguments, ""]
    if options:
        lines += ["| option | description |", "| --- | --- |", *options, ""]
    return lines


def _usage(ctx: typer.Context) -> list[str]:
    pieces = " ".join(ctx.command.collect_usage_pieces(ctx))
    return ["```text", f"Usage: {ctx.command_path} {pieces}".rstrip(), "```", ""]


def render(app: typer.Typer | None = None) -> str:
    """docs/cli.md for ``app`` (default: gitreg's own)."""
    if app is None:
        from gitreg.cli.app import app
    root = typer.main.get_command(app)
    root_ctx = typer.Context(root, info_name="gitreg")
    lines = [HEADER, "## `gitreg`", "", _help(root), "", *_usage(root_ctx), *_parameters(root_ctx)]
    if isinstance(root, typer.core.TyperGroup):  # in the order `gitreg --help` lists them
        names = [n for n in root.list_commands(root_ctx) if not root.commands[n].hidden]
        lines += ["| command | what it does |", "| --- | --- |"]
        for name in names:
            summary = _text(root.commands[name].get_short_help_str(limit=300))
            lines.append(f"| [`{name}`](#gitreg-{name}) | {summary} |")
        lines.append("")
        for name in names:
            command = root.commands[name]
            ctx = typer.Context(command, info_name=name, parent=root_ctx)
            lines += [f"## `gitreg {name}`", "", _help(command), "", *_usage(ctx), *_parameters(ctx)]
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    """``python -m gitreg.cli.reference [PATH]``: write the page to PATH, or print it."""
    args = sys.argv[1:] if argv is None else argv
    page = render()
    if not args:
        sys.stdout.write(page)
        return 0
    Path(args[0]).write_text(page, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
