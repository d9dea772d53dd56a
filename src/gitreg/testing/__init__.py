"""One test harness, shared by the tests, the benchmarks and `gitreg demo`.

Modules by concern; each imports only the standard library at module level (torch, boto3, httpx
and gitreg's own heavy modules are imported inside the functions that need them), so importing
the harness is cheap. `gitreg list` never imports it.

- ``env``       an isolated environment: HOME, git identity, no system/global config, quiet DVC
- ``clock``     ``FixedClock``, the injectable clock
- ``cli``       ``run_cli``: the ``gitreg`` console script as a subprocess
- ``repos``     ``git``, bare remotes, registry repos whose ``origin`` is a bare remote
- ``bundles``   trainer-shaped bundles: TorchScript policies, state dicts, metadata.json
- ``payloads``  hostile bundles: pickle bombs, loader-crashing TorchScript, architecture modules
- ``lifecycle`` a session template registry (two models, six versions) and a fake ``gh``/``glab``
- ``net``       ``free_port``, ``wait_until`` (poll with a deadline), ``wait_for_port``, ``http_request``
- ``server``    a real ``gitreg serve`` subprocess: start, wait ready, stop, logs
- ``load``      a bounded load generator against 127.0.0.1
- ``s3``        a private ``moto_server`` (S3 on 127.0.0.1): start, stop, client, buckets
"""
