"""chatd-crypt: round trips, cost levels, tampering, wrong passwords, truncation, keygen.

Most cases call ``main(argv)`` in-process (fast); a few run the real console
entry point in a subprocess to check exit codes and the no-traceback promise.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from chatd.crypto import armor, kdf
from chatd.crypto.cli import main
from chatd.crypto.envelope import b64
from chatd.crypto.keys import read_private
from tests.crypto import PQ

ALGS = ("aes-256-gcm", "chacha20-poly1305", "fernet")
PW = "correct horse battery"
FAILED = "decryption failed"


@pytest.fixture(autouse=True)
def _no_ambient_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHATD_CRYPT_PASSWORD", raising=False)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def encrypt(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str = "attack at dawn",
            *extra: str) -> str:
    code, out, err = run(["encrypt", "--cost", "low", "--password", PW, *extra, text], capsys)
    assert (code, err) == (0, "")
    return out.strip()


def decrypt(armored: str, capsys: pytest.CaptureFixture[str],
            password: str = PW) -> tuple[int, str, str]:
    return run(["decrypt", "--password", password, armored], capsys)


@pytest.mark.parametrize("kdf_name", ["scrypt", "pbkdf2"])
@pytest.mark.parametrize("alg", ALGS)
def test_round_trip_every_algorithm(alg: str, kdf_name: str, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    armored = encrypt(tmp_path, capsys, "héllo wörld ✓", "--alg", alg, "--kdf", kdf_name)
    assert armored.startswith(f"chatd-crypt:1:{alg}:")
    assert " " not in armored and "\n" not in armored
    assert decrypt(armored, capsys) == (0, "héllo wörld ✓", "")


@pytest.mark.parametrize(("cost", "scrypt_n", "iterations"), [
    ("low", 2**14, 100_000), ("medium", 2**17, 600_000), ("high", 2**18, 2_000_000)])
def test_cost_levels_map_to_documented_parameters(cost: str, scrypt_n: int,
                                                  iterations: int) -> None:
    assert kdf.for_cost("scrypt", cost).params == (("n", scrypt_n), ("r", 8), ("p", 1))
    assert kdf.for_cost("pbkdf2", cost).params == (("i", iterations),)


@pytest.mark.parametrize("cost", ["low", "medium"])
def test_encrypt_writes_the_levels_parameters_in_the_header(
        cost: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["encrypt", "--cost", cost, "--kdf", "pbkdf2", "--password", PW, "x"],
                       capsys)
    header, _ = armor.parse(out.strip().encode())
    assert code == 0 and header.kdf == kdf.for_cost("pbkdf2", cost)
    assert decrypt(out.strip(), capsys)[:2] == (0, "x")


def test_high_cost_round_trip_once(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["encrypt", "--cost", "high", "--password", PW, "costly"], capsys)
    assert code == 0 and ":scrypt:n=262144,r=8,p=1:" in out
    assert decrypt(out.strip(), capsys)[:2] == (0, "costly")


def test_wrong_password_is_one_clear_line(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = decrypt(encrypt(tmp_path, capsys), capsys, password="wrong")
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and FAILED in err and "Traceback" not in err


@pytest.mark.parametrize("alg", ALGS)
def test_one_flipped_bit_anywhere_fails(alg: str, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "data.bin"
    code, _, _ = run(["encrypt", "--alg", alg, "--cost", "low", "--password", PW,
                      "--out", str(out), "--binary", "secret"], capsys)
    assert code == 0
    data = out.read_bytes()
    # A bit in the ciphertext, in the tag, and in the salt/nonce of the header.
    header_end = len(data) - len(armor.parse(data)[1])
    for position in (len(data) - 1, header_end + 2, header_end - 3):
        flipped = bytearray(data)
        flipped[position] ^= 0x01
        out.write_bytes(bytes(flipped))
        code, text, err = run(["decrypt", "--password", PW, "--in", str(out)], capsys)
        assert code == 1 and text == "" and err.startswith("chatd-crypt: error: "), err


def test_a_changed_armored_character_fails(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    armored = encrypt(tmp_path, capsys)
    last = armored[-1]
    tampered = armored[:-1] + ("A" if last != "A" else "B")
    code, _, err = decrypt(tampered, capsys)
    assert code == 1 and err.count("\n") == 1


def test_a_changed_header_parameter_fails(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    armored = encrypt(tmp_path, capsys, "x", "--kdf", "pbkdf2")
    code, _, err = decrypt(armored.replace("i=100000", "i=100001"), capsys)
    assert code == 1 and FAILED in err


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.95])
def test_truncated_armored_input_fails_clearly(keep: float, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    armored = encrypt(tmp_path, capsys)
    code, out, err = decrypt(armored[:int(len(armored) * keep)], capsys)
    assert code == 1 and out == "" and err.startswith("chatd-crypt: error: ")
    assert err.count("\n") == 1


def test_truncated_binary_input_fails_clearly(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "data.bin"
    run(["encrypt", "--cost", "low", "--password", PW, "--out", str(out), "--binary", "x"],
        capsys)
    data = out.read_bytes()
    for size in (5, 20, len(data) - 1):
        out.write_bytes(data[:size])
        code, _, err = run(["decrypt", "--password", PW, "--in", str(out)], capsys)
        assert code == 1 and err.startswith("chatd-crypt: error: ")


def test_binary_and_armored_are_detected(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    src, enc, dec = tmp_path / "in.txt", tmp_path / "out.bin", tmp_path / "back.txt"
    src.write_bytes(b"\x00binary\xffpayload")
    assert run(["encrypt", "--cost", "low", "--password", PW, "--in", str(src),
                "--out", str(enc), "--binary"], capsys)[0] == 0
    assert enc.read_bytes().startswith(armor.MAGIC)
    assert run(["decrypt", "--password", PW, "--in", str(enc), "--out", str(dec)], capsys)[0] == 0
    assert dec.read_bytes() == src.read_bytes()
    assert stat.S_IMODE(dec.stat().st_mode) == 0o600  # a plaintext file is private


def test_raw_key_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = tmp_path / "key"
    key.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
    code, out, _ = run(["encrypt", "--alg", "chacha20-poly1305", "--key-file", str(key), "k"],
                       capsys)
    assert code == 0 and ":raw:-:-:" in out
    assert run(["decrypt", "--key-file", str(key), out.strip()], capsys)[:2] == (0, "k")
    code, _, err = run(["decrypt", "--password", PW, out.strip()], capsys)
    assert code == 1 and "--key-file" in err
    other = tmp_path / "other"
    other.write_bytes(os.urandom(32))
    assert run(["decrypt", "--key-file", str(other), out.strip()], capsys)[0] == 1


def test_password_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                          capsys: pytest.CaptureFixture[str]) -> None:
    armored = encrypt(tmp_path, capsys, "sources")
    pwfile = tmp_path / "pw"
    pwfile.write_text(PW + "\nignored second line\n")
    assert run(["decrypt", "--password-file", str(pwfile), armored], capsys)[1] == "sources"
    read_end, write_end = os.pipe()
    os.write(write_end, PW.encode())
    os.close(write_end)
    assert run(["decrypt", "--password-fd", str(read_end), armored], capsys)[1] == "sources"
    monkeypatch.setenv("CHATD_CRYPT_PASSWORD", PW)
    assert run(["decrypt", armored], capsys)[1] == "sources"
    code, _, err = run(["decrypt", "--password", "a", "--password-file", str(pwfile), armored],
                       capsys)
    assert code == 1 and "one of" in err


def test_a_password_file_is_read_to_its_first_line_end_only(tmp_path: Path) -> None:
    # "The first line of FILE": a pipe whose writer stays open after the line (a
    # password manager's FIFO), or an endless file, must not be read to its end.
    armored = cli("encrypt", "--cost", "low", stdin=b"piped").stdout.strip()
    fifo = tmp_path / "pw.fifo"
    os.mkfifo(fifo)
    done = threading.Event()

    def writer() -> None:
        with open(fifo, "wb") as out:
            out.write(PW.encode() + b"\n")
            out.flush()
            done.wait(30)  # open until the test ends

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        result = cli("decrypt", "--password-file", str(fifo), stdin=armored, timeout=10)
    finally:
        done.set()
        thread.join()
    assert (result.returncode, result.stdout) == (0, b"piped"), result.stderr
    endless = cli("decrypt", "--password-file", "/dev/zero", stdin=armored, timeout=10)
    assert endless.returncode == 1
    assert endless.stderr.startswith(b"chatd-crypt: error: the first line of /dev/zero is"), \
        endless.stderr


def test_decrypt_out_to_a_pipe_writes_into_it(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    # --out /dev/stdout, or a FIFO a program reads: the plaintext goes there. It used
    # to be renamed over the path, a regular file put in place of the pipe (or, run
    # as root, of the device) and the reader left waiting.
    armored = encrypt(tmp_path, capsys, "to the pipe")
    fifo = tmp_path / "plain.fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader waits on the pipe
    try:
        code, _, err = run(["decrypt", "--password", PW, "--out", str(fifo), armored], capsys)
        received = os.read(reader, 4096)
    finally:
        os.close(reader)
    assert (code, err) == (0, "")
    assert received == b"to the pipe"
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_a_key_file_that_never_ends_is_refused(tmp_path: Path) -> None:
    # --key-file /dev/urandom (for "head -c 32 /dev/urandom > key") was read for ever.
    for endless in ("/dev/zero", "/dev/urandom"):
        result = cli("encrypt", "--key-file", endless, stdin=b"x", timeout=10)
        assert result.returncode == 1
        assert result.stderr == (f"chatd-crypt: error: {endless} must hold a 32-byte key "
                                 "(raw, hex or base64)\n").encode(), result.stderr


def test_no_password_and_no_terminal_is_a_clear_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    armored = encrypt(tmp_path, capsys)
    monkeypatch.setattr("chatd.crypto.cli.open", _no_tty, raising=False)
    code, _, err = run(["decrypt", armored], capsys)
    assert code == 1 and "no password" in err


def _no_tty(*args: object, **kwargs: object) -> None:
    raise OSError("no terminal")


def test_header_with_absurd_kdf_parameters_is_refused(
        capsys: pytest.CaptureFixture[str]) -> None:
    forged = "chatd-crypt:1:aes-256-gcm:scrypt:n=1073741824,r=8,p=1:AAAAAAAAAAAAAAAAAAAAAA:" \
             "AAAAAAAAAAAAAAAA:AAAAAAAAAAAAAAAAAAAAAA"
    code, _, err = decrypt(forged, capsys)
    assert code == 1 and "refused" in err


def test_not_chatd_crypt_data(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = decrypt("hello there", capsys)
    assert code == 1 and "not chatd-crypt data" in err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["encrypt", "--alg", "rot13", "x"]) == 2
    assert main([]) == 2


def test_keygen_writes_a_private_file_created_0600(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    created: list[int] = []
    real_open = os.open

    def spy(path: str, flags: int, mode: int = 0o777, *args: object) -> int:
        if flags & os.O_CREAT:
            created.append(mode)
        return real_open(path, flags, mode)

    monkeypatch.setattr(os, "open", spy)
    umask = os.umask(0o022)
    try:
        code, out, _ = run(["keygen", "--out", str(tmp_path / "me")], capsys)
    finally:
        os.umask(umask)
    assert code == 0 and "/keys publish " in out and "fingerprint: " in out
    assert created == [0o600]  # the mode is given at creation, not set afterwards
    private, public = tmp_path / "me.key", tmp_path / "me.pub"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert read_private(private).mlkem_seed is None
    assert '"x25519"' in public.read_text() and "mlkem" not in public.read_text()
    code, _, err = run(["keygen", "--out", str(tmp_path / "me")], capsys)
    assert code == 1 and "exists" in err
    assert run(["keygen", "--force", "--out", str(tmp_path / "me")], capsys)[0] == 0
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_keygen_beside_an_existing_public_file_writes_no_private_key(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # me.pub alone (another's key saved under the name, or one whose private key
    # was lost): refused before a private key is written that it would not match.
    public = tmp_path / "me.pub"
    public.write_text("kept\n")
    code, _, err = run(["keygen", "--out", str(tmp_path / "me")], capsys)
    assert code == 1 and f"{public} exists" in err
    assert not (tmp_path / "me.key").exists() and public.read_text() == "kept\n"
    assert run(["keygen", "--force", "--out", str(tmp_path / "me")], capsys)[0] == 0
    written = json.loads(public.read_text())["x25519"]
    assert written == b64(read_private(tmp_path / "me.key").x25519_public)


def test_keygen_into_a_missing_directory_names_the_file_asked_for(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    asked = tmp_path / "no" / "such" / "me"
    code, _, err = run(["keygen", "--out", str(asked)], capsys)
    assert code == 1
    assert err == f"chatd-crypt: error: {asked}.key: No such file or directory\n"


@PQ
def test_keygen_pq(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["keygen", "--pq", "--out", str(tmp_path / "pq")], capsys)
    assert code == 0
    identity = read_private(tmp_path / "pq.key")
    assert identity.mlkem_seed is not None and len(identity.mlkem_public or b"") == 1184
    assert len(out.split("/keys publish ")[1].split()) == 2
    assert stat.S_IMODE((tmp_path / "pq.key").stat().st_mode) == 0o600


# -- the real command line, in subprocesses -------------------------------------------------


def cli(*args: str, stdin: bytes = b"", env: dict[str, str] | None = None,
        timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "chatd.crypto.cli", *args], input=stdin,
                          capture_output=True, timeout=timeout, check=False,
                          env={**os.environ, "CHATD_CRYPT_PASSWORD": PW, **(env or {})})


def test_subprocess_stdin_to_stdout_round_trip() -> None:
    enc = cli("encrypt", "--alg", "chacha20-poly1305", "--cost", "low", stdin=b"over stdin\n")
    assert enc.returncode == 0 and enc.stdout.startswith(b"chatd-crypt:1:chacha20-poly1305:")
    dec = cli("decrypt", stdin=enc.stdout)
    assert (dec.returncode, dec.stdout, dec.stderr) == (0, b"over stdin\n", b"")


def test_subprocess_tampering_exits_non_zero_without_traceback() -> None:
    enc = cli("encrypt", "--cost", "low", stdin=b"payload")
    text = enc.stdout.decode().strip()
    tampered = text[:-2] + ("AA" if not text.endswith("AA") else "BB")
    dec = cli("decrypt", stdin=tampered.encode())
    assert dec.returncode == 1 and dec.stdout == b""
    assert b"Traceback" not in dec.stderr and dec.stderr.count(b"\n") == 1


def test_subprocess_wrong_password_and_garbage() -> None:
    enc = cli("encrypt", "--alg", "fernet", "--cost", "low", stdin=b"payload")
    dec = cli("decrypt", stdin=enc.stdout, env={"CHATD_CRYPT_PASSWORD": "nope"})
    assert dec.returncode == 1 and b"Traceback" not in dec.stderr
    garbage = cli("decrypt", stdin=os.urandom(64))
    assert garbage.returncode == 1 and b"Traceback" not in garbage.stderr
