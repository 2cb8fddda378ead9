"""The API's OpenAPI 3 document and its readable page, both made from the route table.

Nothing here is written by hand per route: a route added to the table is
described, and one removed disappears, so the reference cannot drift from
what the server answers. The page is plain HTML (no script, no external
asset); every text in it is escaped.
"""

from __future__ import annotations

import html
import json
from typing import TYPE_CHECKING, Any

from chatd.web import schemas as s

if TYPE_CHECKING:
    from chatd.web.routes import Route

STATUS_TEXT = {400: "Bad arguments or a malformed request", 401: "Missing or refused token",
               403: "Not permitted (role, membership, mute, moderated room, origin)",
               404: "No such object", 409: "The name is taken", 413: "The body is too large",
               429: "Rate-limited (Retry-After, retry_ms)",
               503: "Busy: try again (Retry-After, retry_ms)"}


def document(routes: list[Route], version: str) -> dict[str, Any]:
    """The OpenAPI 3.0 document of ``routes``."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.0.3",
        "info": {"title": "chatd HTTP API", "version": version,
                 "description": "The rooms, messages, files, encryption and webhooks of "
                                "chatd over HTTP. Errors carry chatd's stable codes (see "
                                "docs/PROTOCOL.md). A breaking change means /api/v2."},
        "paths": paths,
        "components": {
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer",
                                          "description": "An API token from /token create"}},
            "schemas": {"Error": s.ERROR},
        },
        "security": [{"token": []}],
    }


def _operation(route: Route) -> dict[str, Any]:
    operation: dict[str, Any] = {"operationId": route.operation_id, "summary": route.summary,
                                 "tags": [route.tag], "responses": _responses(route)}
    if route.params:
        operation["parameters"] = [
            {"name": p.name, "in": p.where, "required": p.where == "path" or p.required,
             "description": p.description, "schema": s.INT if p.integer else s.STR}
            for p in route.params]
    if route.body == "binary":
        operation["requestBody"] = {"required": True, "content": {
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}
    elif route.body is not None:
        operation["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": _body_schema(route)}}}
    if route.auth:
        # The token scope the operation needs (/token create ... <scopes>).
        operation["x-scope"] = route.needs.value
        if route.also:
            # Those it needs beside it (creating a webhook: post too, since it posts).
            operation["x-scopes"] = [scope.value for scope in route.scopes]
    else:
        operation["security"] = []
    return operation


def _body_schema(route: Route) -> s.Schema:
    """A request body's schema as the server holds a body to it: a field the operation
    does not take is refused (Call.body), not ignored, but by an ``open_body`` route
    (an incoming webhook's). (An answer's schema stays open: a client reads on when a
    later version adds a field.)"""
    assert isinstance(route.body, dict)
    return {**route.body, "additionalProperties": route.open_body}


def _responses(route: Route) -> dict[str, Any]:
    # What a POST makes answers 201; encryption makes nothing stored.
    ok = "201" if route.method == "POST" and route.tag != "crypto" else "200"
    if isinstance(route.answer, str):
        content = {route.answer: {"schema": {"type": "string", "format": "binary"}}}
    else:
        content = {"application/json": {"schema": route.answer}}
    responses: dict[str, Any] = {ok: {"description": "Done", "content": content}}
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    # Every request with a token is charged to its account's bucket: any may be 429.
    found = {*route.errors, *((401, 403, 429) if route.auth else ())}
    # What the listener refuses before the operation runs: a parameter that is no
    # number, or a query parameter missing (400), a body over its limit (413, and
    # 400 when it is no JSON object); and any request may meet a busy database (503).
    if route.body is not None or any(p.integer or p.where == "query" for p in route.params):
        found.add(400)
    if route.body is not None:
        found.add(413)
    found.add(503)
    for status in sorted(found):
        responses[str(status)] = {"description": STATUS_TEXT.get(status, "Refused"), **error}
    responses["default"] = {"description": "Any other error (internal-error)", **error}
    return responses


def page(routes: list[Route], version: str) -> bytes:
    """The readable reference: one section per route, from the same table."""
    sections = [_section(route) for route in routes]
    body = "\n".join(sections)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>chatd HTTP API {html.escape(version)}</title>
<link rel="stylesheet" href="/static/docs.css">
<link rel="icon" href="data:,">
</head>
<body>
<main>
<h1>chatd HTTP API</h1>
<p>Version {html.escape(version)}. Authenticate with <code>Authorization: Bearer
&lt;token&gt;</code> (a token from <code>/token create</code>). Errors are
<code>{{"error": {{"code": ..., "message": ...}}}}</code> with chatd's stable codes.
The machine-readable document is <a href="/api/v1/openapi.json">openapi.json</a>.</p>
{body}
</main>
</body>
</html>
""".encode()


def _section(route: Route) -> str:
    esc = html.escape
    rows = "".join(f"<tr><td><code>{esc(p.name)}</code></td><td>{esc(p.where)}</td>"
                   f"<td>{'integer' if p.integer else 'string'}</td>"
                   f"<td>{esc(p.description)}</td></tr>" for p in route.params)
    params = (f"<table><tr><th>parameter</th><th>in</th><th>type</th><th>meaning</th></tr>"
              f"{rows}</table>") if rows else ""
    if route.body == "binary":
        body = "<p>Body: the file's bytes.</p>"
    elif route.body is not None:
        body = (f"<p>Body (JSON):</p><pre>{esc(json.dumps(_body_schema(route), indent=1))}"
                "</pre>")
    else:
        body = ""
    answer = (f"<p>Answer: <code>{esc(route.answer)}</code> bytes.</p>"
              if isinstance(route.answer, str)
              else f"<p>Answer (JSON):</p><pre>{esc(json.dumps(route.answer, indent=1))}</pre>")
    needed = " and ".join(scope.value for scope in route.scopes)
    auth = (f"a token with the {needed} scope{'s' * (len(route.scopes) > 1)}" if route.auth
            else "no token")
    return (f'<section id="{esc(route.operation_id)}"><h2><code>{esc(route.method)} '
            f"{esc(route.path)}</code></h2><p>{esc(route.summary)} ({auth}).</p>"
            f"{params}{body}{answer}</section>")
