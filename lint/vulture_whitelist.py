"""Names vulture cannot see used: each is called or read by a framework, not by our code.

vulture (``make lint``, ``[tool.vulture]`` in pyproject.toml) reads this file as code that uses
these names. Add a name here only for dynamic use, with the reason; dead code is deleted.
"""

# ruff: noqa: B018, F821
_ = object()

# typer: commands and the app callback are registered by decorator (@app.command/@app.callback)
_.main_options
_.list_
_.show
_.demo

# FastAPI: routes are registered by decorator (@app.get/@app.post)
_.predict_model
_.prometheus
_.v2_model
_.v2_model_version
_.v2_server
_.v2_live
_.v2_model_ready
_.v2_version_ready
_.v2_model_infer
_.v2_model_version_infer
_.invocations
_.http_error
_.webhook
_.docs

# pydantic: model_config is read by the metaclass; validators are registered by decorator;
# fields that only leave as JSON (model_dump) are read by the serializer
_.model_config
_._inside
_._v1
_._aware
_._finite
_._parent
_.latest_at
_.model_name
_.model_version
_.instances
_.predictions

# ruamel.yaml / DVC: attributes the library reads after we set them
_.preserve_quotes
_.quiet

# the module-level __getattr__ (PEP 562) is called by the import system for lazy names
__getattr__

# torch: nn.Module.forward is called by Module.__call__ (and by TorchScript)
_.forward

# pytest: a module's pytestmark is read by the collector
pytestmark

# the context-manager protocol: __exit__(exc_type, exc, tb) must take its three arguments
exc_type
exc
tb

# pydantic fields that only leave as JSON (the /health answer)
_.error_rate
_.p99_ms
_.input_shapes

# Protocols: parameter names must match the real signature they describe
prepend
basename
numbered

# http.server handlers (tests' tiny servers): called by BaseHTTPRequestHandler by name
_.do_GET
_.do_POST
_.log_message
_.protocol_version

# pytest hooks are called by name
pytest_collection_modifyitems

# gitrepo.parse: TagRecord's tagger fields come with every record from for-each-ref; kept in the
# record type (history and the browser show who tagged), read by no command yet
_.tagger_name
_.tagger_email
_.tagger_date
