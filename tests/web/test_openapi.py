"""The API's OpenAPI document: valid OpenAPI 3, made from the routes the server serves."""

from __future__ import annotations

import re

import pytest
from openapi_spec_validator import validate

from tests.helpers import ChatServer, Clients
from tests.web.helpers import http, token_for


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
        if isinstance(route.body, dict):
            # A field the operation does not take is refused: the schema is closed;
            # but an incoming webhook's, whose senders add fields of their own.
            schema = operation["requestBody"]["content"]["application/json"]["schema"]
            assert schema["additionalProperties"] is route.open_body, route.path
            assert route.open_body is (route.path == "/hooks/{id}/{secret}")
            assert route.fields in (None, set(schema["properties"])), route.path


async def test_the_reference_page_is_static_html_without_scripts(server: ChatServer) -> None:
    async with http(server) as client:
        page = await client.get("/api/v1/docs")
    assert page.status_code == 200
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "<script" not in page.text and not re.search(r"\son\w+=", page.text)
    assert "/api/v1/rooms/{room}/messages" in page.text
    assert "http://" not in page.text and "https://" not in page.text


@pytest.mark.server(storage__flush_interval=3600, storage__max_pending=1)
async def test_the_statuses_the_server_answers_are_the_documents(
        server: ChatServer, clients: Clients) -> None:
    """A refusal the server really gives is one the operation's document lists: a
    query number that is not one (400), a body over web.max_body (413), a message
    that waits past the writer's bound (503)."""
    alice = await clients.user("alice")
    await alice.command("/create den")
    token = await token_for(server, "alice")
    async with http(server, token) as client:
        document = (await client.get("/api/v1/openapi.json")).json()
        seen = [
            ("get", "/api/v1/rooms/{room}/messages",
             await client.get("/api/v1/rooms/den/messages", params={"limit": "many"})),
            ("get", "/api/v1/files/{id}", await client.get("/api/v1/files/x")),
            ("delete", "/api/v1/rooms/{room}/webhooks/{id}",
             await client.delete("/api/v1/rooms/den/webhooks/x")),
            ("post", "/api/v1/rooms/{room}/messages",
             await client.post("/api/v1/rooms/den/messages", json={"text": "a" * 70_000})),
            ("post", "/api/v1/rooms/{room}/messages",
             await client.post("/api/v1/rooms/den/messages", json={"text": "waits"})),
            ("post", "/api/v1/rooms/{room}/messages",
             await client.post("/api/v1/rooms/den/messages", json={"text": "too many"})),
        ]
    assert [r.status_code for *_, r in seen] == [400, 400, 400, 413, 201, 503]
    for method, path, response in seen:
        responses = document["paths"][path][method]["responses"]
        assert str(response.status_code) in responses, (method, path, response.status_code)
