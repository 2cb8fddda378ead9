"""The API's OpenAPI document: valid OpenAPI 3, made from the routes the server serves."""

from __future__ import annotations

import re

from openapi_spec_validator import validate

from tests.helpers import ChatServer
from tests.web.helpers import http


async def test_the_document_is_valid_and_names_every_route(server: ChatServer) -> None:
    assert server.web is not None
    async with http(server) as client:
        document = (await client.get("/api/v1/openapi.json")).json()
    validate(document)
    served = {(r.method.lower(), r.path) for r in server.web.routes.routes}
    described = {(method, path) for path, ops in document["paths"].items() for method in ops}
    assert served == described
    for route in server.web.routes.routes:
        operation = document["paths"][route.path][route.method.lower()]
        assert operation["summary"] == route.summary
        assert ("security" in operation) is (not route.auth)
        if route.auth:
            # Every request with a token is charged to its account's bucket.
            assert {"401", "403", "429"} <= set(operation["responses"]), route.path


async def test_the_reference_page_is_static_html_without_scripts(server: ChatServer) -> None:
    async with http(server) as client:
        page = await client.get("/api/v1/docs")
    assert page.status_code == 200
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "<script" not in page.text and not re.search(r"\son\w+=", page.text)
    assert "/api/v1/rooms/{room}/messages" in page.text
    assert "http://" not in page.text and "https://" not in page.text
