"""The gitreg command line: the only package that prints.

- :mod:`gitreg.cli.app` — the typer app, the global options, the entry point :func:`main`;
- :mod:`gitreg.cli.commands` — the commands, one module per concern, each a thin call into
  the :class:`~gitreg.registry.Registry` facade;
- :mod:`gitreg.cli.output` — the one output sink (human or JSON, chosen once; it escapes
  every string it did not write);
- :mod:`gitreg.cli.views` — the human form of each result type;
- :mod:`gitreg.cli.error_table` — the one error funnel (a table from exception type to message);
- :mod:`gitreg.cli.html_report` — `gitreg report --html` from a Jinja2 template.
"""

from __future__ import annotations

from gitreg.cli.app import app, main

__all__ = ["app", "main"]
