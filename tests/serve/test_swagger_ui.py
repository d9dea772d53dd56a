"""End-to-end: `/docs` of a real `gitreg serve` over loopback works without the internet: the
page names no URL outside the server, and every file it loads (Swagger UI's JavaScript, CSS and
icon, from the swagger-ui-bundle package, and the OpenAPI document) is served by the server."""

from __future__ import annotations

import re

import pytest

from gitreg.testing.server import wait_for as wait_until

pytestmark = pytest.mark.slow


def test_docs_is_swagger_ui_served_entirely_by_the_server(registry, remote, serve):
    server = serve(remote, ready=False)  # nothing promoted: /docs needs no model
    page = wait_until(lambda: (r := server.get("/docs")).status_code == 200 and r, "/docs", 60, server)
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "SwaggerUIBundle(" in html and "swagger-ui.css" in html

    outside = [u for u in re.findall(r"(?:https?:)?//[^\s'\"<>)]+", html) if not u.startswith(server.url)]
    assert not outside, f"/docs loads from outside the server: {outside}"
    assert '"validatorUrl": null' in html  # Swagger UI would fetch a badge from validator.swagger.io

    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    spec = re.findall(r"""url:\s*["']([^"']+)["']""", html)
    assert len(assets) == 3 and spec == ["/openapi.json"], (assets, spec)
    types = {}
    for path in [*assets, *spec]:
        assert path.startswith("/"), path
        r = server.get(path)
        assert r.status_code == 200 and r.content, (path, r.status_code)
        types[path.rsplit(".", 1)[-1]] = r.headers["content-type"].split(";")[0]
        if path.endswith(".css"):  # its images are inline: nothing fetched from elsewhere
            assert not re.findall(r"url\(\s*[\"']?(?:https?:)?//", r.text)
    assert types == {
        "js": "text/javascript",
        "css": "text/css",
        "png": "image/png",
        "json": "application/json",
    }
    js = next(a for a in assets if a.endswith(".js"))
    assert "SwaggerUIBundle" in server.get(js).text  # the bundle the page calls, not an error page
    assert "/predict" in server.get("/openapi.json").json()["paths"]
    assert server.get("/redoc").status_code == 404  # ReDoc would load from a CDN: not served
