"""The browser client's files as the web listener serves them: no inline script or
style (the CSP forbids them), no external asset, every file referenced there."""

from __future__ import annotations

import re

from chatd.web.static import ROOT
from tests.helpers import ChatServer
from tests.web.helpers import http
from tests.web.test_http import inline_scripts

PAGES = {"/": "index.html", "/admin": "admin.html"}


async def test_both_pages_are_served_with_their_assets(server: ChatServer) -> None:
    async with http(server) as client:
        for path, name in PAGES.items():
            page = await client.get(path)
            assert page.status_code == 200, path
            assert page.text == (ROOT / name).read_text()
            assert "script-src 'self'" in page.headers["content-security-policy"]
            assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text)
            assert assets, path
            for asset in assets:
                served = await client.get(asset)
                assert served.status_code == 200, asset
                assert served.headers["cache-control"] == "no-cache"


def test_no_inline_code_no_external_asset_and_text_only_rendering() -> None:
    for path in sorted(ROOT.iterdir()):
        text = path.read_text()
        if path.suffix == ".html":
            assert inline_scripts(text) == [], path.name
            assert "<style" not in text and not re.search(r"\sstyle=", text), path.name
            assert not re.search(r"\son[a-z]+=", text), path.name
        assert not re.search(r"(?:src|href|url\()\s*=?\s*[\"']?(?:https?:)?//", text), path.name
        if path.suffix == ".js":
            # Server text is set with textContent; nothing is parsed as HTML.
            assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|"
                                 r"\beval\(|new Function", text), path.name


def test_every_module_import_is_a_served_file() -> None:
    for path in ROOT.glob("*.js"):
        for imported in re.findall(r'from "\./([^"]+)"', path.read_text()):
            assert (ROOT / imported).is_file(), (path.name, imported)
