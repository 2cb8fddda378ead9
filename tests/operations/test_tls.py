"""The optional TLS listener: the same protocol, the same rooms, over TLS."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from chatd import __version__
from chatd.app.compose import build_app
from chatd.client import ChatClient, LineClient
from chatd.config import ConfigError, load_config
from tests.helpers import PASSWORD, ChatServer, eventually, start_server
from tests.helpers import test_config as make_config
from tests.operations import restored_logging


def self_signed(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A certificate for ``host`` (an IP address SAN) and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "chatd test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(host))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


def trusting(cert: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(cert))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def tls_port(server: ChatServer) -> int:
    """The line protocol's TLS port: the second address (IRC's come after)."""
    assert len(server.addresses) >= 2
    return int(server.addresses[1].rpartition(":")[2])


@pytest.fixture
async def tls_server(tmp_path: Path) -> AsyncIterator[tuple[ChatServer, Path]]:
    cert, key = self_signed(tmp_path)
    server = await start_server(tmp_path / "chatd.db", tls__enabled=True, tls__port=0,
                                tls__cert=str(cert), tls__key=str(key))
    yield server, cert
    await server.stop()


async def test_tls_and_plain_clients_share_a_room(tls_server: tuple[ChatServer, Path]) -> None:
    server, cert = tls_server
    port = tls_port(server)
    assert port != server.port
    secure = await ChatClient.connect("127.0.0.1", port, ssl=trusting(cert),
                                      server_hostname="127.0.0.1")
    plain = await ChatClient.connect("127.0.0.1", server.port)
    try:
        assert f"chatd {__version__}" in secure.banner
        peer = secure._writer.get_extra_info("ssl_object")
        assert peer is not None and peer.version() in ("TLSv1.2", "TLSv1.3")
        await secure.command(f"/register alice {PASSWORD}")
        await plain.command(f"/register bob {PASSWORD}")
        await secure.command("/create lounge")
        await plain.command("/join lounge")

        sent = await secure.say("hello over tls")
        assert sent["type"] == "message"
        got = await plain.next_event(lambda e: e.get("type") == "message")
        assert (got["from"], got["text"]) == ("alice", "hello over tls")
        await plain.say("hello in the clear")
        got = await secure.next_event(lambda e: e.get("type") == "message"
                                      and e.get("from") == "bob")
        assert got["text"] == "hello in the clear"
        history = await secure.command("/history lounge")
        assert [m["text"] for m in history["messages"]] == ["hello over tls",
                                                            "hello in the clear"]
    finally:
        await secure.close()
        await plain.close()


async def test_an_untrusted_certificate_is_refused(tls_server: tuple[ChatServer, Path]) -> None:
    server, _ = tls_server
    with pytest.raises(ssl.SSLCertVerificationError):
        await ChatClient.connect("127.0.0.1", tls_port(server), ssl=ssl.create_default_context(),
                                 server_hostname="127.0.0.1", timeout=5)
    # The server is still fine afterwards.
    plain = await ChatClient.connect("127.0.0.1", server.port)
    try:
        assert (await plain.command("/ping")).ok
    finally:
        await plain.close()


async def test_plain_text_on_the_tls_port_gets_no_chat(
        tls_server: tuple[ChatServer, Path]) -> None:
    server, _ = tls_server
    raw = await LineClient.connect("127.0.0.1", tls_port(server))
    try:
        raw.send("/ping")
        try:
            data = await asyncio.wait_for(raw.reader.read(4096), 2)
        except (ConnectionError, TimeoutError):
            data = b""
        assert b"pong" not in data and b"chatd" not in data
    finally:
        await raw.close()


def test_tls_enabled_without_a_certificate_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"tls\.enabled.*tls\.cert"):
        load_config(None, {"tls.enabled": True})
    with pytest.raises(ConfigError, match="tls"):
        load_config(None, {"tls.enabled": True, "tls.cert": "/etc/cert.pem"})
    load_config(None, {"tls.enabled": False})


async def test_a_missing_certificate_file_stops_start_up(tmp_path: Path) -> None:
    config = make_config(tmp_path / "chatd.db", tls__enabled=True, tls__port=0,
                         tls__cert=str(tmp_path / "none.pem"), tls__key=str(tmp_path / "no.pem"),
                         control__path=str(tmp_path / "ctl.sock"))
    with restored_logging():
        assert await asyncio.wait_for(build_app(config, process=True).run(), 10) == 1


async def test_a_reload_picks_up_a_renewed_certificate(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    overrides = {"tls.enabled": True, "tls.port": 0, "tls.cert": str(cert),
                 "tls.key": str(key), "control.path": str(tmp_path / "ctl.sock"),
                 "irc.enabled": True, "irc.port": 0, "irc.tls_port": 0}
    config = make_config(tmp_path / "chatd.db", **{k.replace(".", "__"): v
                                                   for k, v in overrides.items()})
    with restored_logging():
        daemon = build_app(config, process=True, overrides={"accounts.bcrypt_cost": 4, **overrides})
        await daemon.start()
        try:
            renewed = tmp_path / "renewed"
            renewed.mkdir()
            new_cert, new_key = self_signed(renewed)
            cert.write_bytes(new_cert.read_bytes())
            key.write_bytes(new_key.read_bytes())
            assert daemon.reload() is None
            client = await ChatClient.connect("127.0.0.1", tls_port(daemon),
                                              ssl=trusting(new_cert),
                                              server_hostname="127.0.0.1", timeout=5)
            await client.close()
            # The IRC listener's TLS port is renewed too.
            assert daemon.irc is not None and daemon.irc.tls_port is not None
            await handshake(daemon.irc.tls_port, new_cert)
            # A certificate that cannot be loaded refuses the reload, naming the
            # files; the one in use stays.
            cert.write_text("not a certificate")
            refused = daemon.reload()
            assert refused is not None and refused.startswith("tls.cert, tls.key: cannot load")
            await handshake(daemon.irc.tls_port, new_cert)
        finally:
            await daemon.stop()


async def handshake(port: int, cert: Path) -> None:
    """A TLS handshake with ``port`` that trusts ``cert`` alone."""
    _, writer = await asyncio.wait_for(asyncio.open_connection(
        "127.0.0.1", port, ssl=trusting(cert), server_hostname="127.0.0.1"), 5)
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError):
        await writer.wait_closed()


async def test_a_lost_tls_connection_keeps_its_address(tmp_path: Path) -> None:
    """Once a TLS connection is lost, its socket no longer says whose it was: the
    connection falls back on the address it counted against (``host:0``), and that
    address's allowance is given back, connection after connection."""
    cert, key = self_signed(tmp_path)
    server = await start_server(tmp_path / "chatd.db", tls__enabled=True, tls__port=0,
                                tls__cert=str(cert), tls__key=str(key),
                                limits__max_connections_per_ip=1)
    try:
        for _ in range(3):
            client = await ChatClient.connect("127.0.0.1", tls_port(server), ssl=trusting(cert),
                                              server_hostname="127.0.0.1")
            assert (await client.command("/ping")).ok  # (not refused: the allowance is back)
            [session] = server.services.presence.sessions
            port = client._writer.get_extra_info("sockname")[1]
            assert session.peer == f"127.0.0.1:{port}"
            await client.close()
            await eventually(lambda: server.connection_count == 0)
            assert session.peer == "127.0.0.1:0"
    finally:
        await server.stop()
