"""The commands, one module per concern. Each command parses its options, makes one call into
the :class:`~gitreg.registry.Registry` facade and hands the result to the output sink with its
view; :mod:`gitreg.cli.app` registers them and runs them through the error funnel."""
