"""The listener: off by default, TLS, configuration, hostile input, slow consumers."""

from __future__ import annotations

import asyncio
import datetime
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from chatd.config import ConfigError, load_config
from chatd.domain.clock import ManualClock
from chatd.irc.connection import IrcConnection
from tests.helpers import PASSWORD, ChatServer, start_server
from tests.irc.conftest import IrcFactory
from tests.irc.helpers import IrcClient


async def test_off_by_default(db_path: Path) -> None:
    config = load_config(None)
    assert not config.irc.enabled and config.irc.port == 6667 and config.irc.tls_port is None
    assert not config.accounts.guests
    server = await start_server(db_path, clock=ManualClock())
    try:
        assert server.irc is None and len(server.addresses) == 1
    finally:
        await server.stop()


def test_a_tls_port_needs_the_certificate() -> None:
    with pytest.raises(ConfigError, match=r"irc\.tls_port"):
        load_config(None, {"irc.tls_port": 6697})


def _certificate(directory: Path) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


async def test_irc_over_tls(tmp_path: Path, db_path: Path) -> None:
    cert, key = _certificate(tmp_path)
    server = await start_server(db_path, clock=ManualClock(), irc__enabled=True,
                                irc__port=0, irc__tls_port=0, tls__cert=cert, tls__key=key)
    try:
        assert server.irc is not None and server.irc.tls_port is not None
        await server.services.accounts.create("bob", PASSWORD)
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        client = await IrcClient.connect(server.irc.tls_port, tls=context)
        await client.register("bob", password=f"bob:{PASSWORD}")
        assert client.nick == "bob"
        assert len(server.addresses) == 3
        await client.close()
    finally:
        await server.stop()


HOSTILE = [
    "", ":", "@", "@;;;; PING x", "@a=\\ PING x", ": PING", "PRIVMSG", "PRIVMSG #",
    "PRIVMSG # :x", "JOIN ,,,", "JOIN #" + "a" * 40, "MODE # +b", "MODE #x +bbbbbbbb",
    "MODE bob +" + "i" * 100, "KICK # ,", "WHO", "WHO *", "WHOIS ,", "TOPIC #",
    "CAP REQ", "CAP", "AUTHENTICATE", "AUTHENTICATE +", "NAMES ,#,", "LIST ,",
    "INVITE x", "PART ,", "AWAY :" + "x" * 400, "\x00\x01\x02 PING", "PRIVMSG bob :\x01",
    "PRIVMSG bob :\x01ACTION\x01", "TAGMSG", "NICK " + "n" * 30, "USER a b c",
]


async def test_hostile_lines_never_break_a_connection(irc: IrcFactory) -> None:
    bob = await irc("bob")
    for line in HOSTILE:
        bob.send(line)
    bob.send_raw(b"\xff\xfe\xfd\r\n\r\n\n\n" + b"x" * 9000 + b"\n")
    bob.send("PING still-here")
    while (await bob.expect("PONG")).params[1] != "still-here":
        pass
    assert not [line for line in bob.lines if "something went wrong" in line]


async def test_a_client_that_does_not_read_is_cut_off(server: ChatServer) -> None:
    assert server.irc is not None
    connection = IrcConnection(server.listeners, server.irc.front)

    class Transport(asyncio.Transport):
        aborted = False

        def get_write_buffer_size(self) -> int:
            return server.config.limits.output_buffer + 1

        def write(self, data: bytes | bytearray | memoryview) -> None:
            pass

        def is_closing(self) -> bool:
            return self.aborted

        def abort(self) -> None:
            self.aborted = True

        def get_extra_info(self, name: str, default: object = None) -> object:
            return ("127.0.0.9", 4000) if name == "peername" else default

    transport = Transport()
    connection.connection_made(transport)
    connection.data_received(b"PING x\r\n")
    await asyncio.sleep(0.01)
    assert transport.aborted
    connection.connection_lost(None)
