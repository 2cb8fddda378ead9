"""chatd-crypt: encrypt, decrypt, keygen (see docs/CRYPT.md).

Every failure is one line on standard error and a non-zero exit: 1 for a
failure (wrong password, tampering, truncation, unreadable file), 2 for a
usage error. Nothing here prints a password, a key or a traceback.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

from chatd import __version__
from chatd.crypto import CryptError, armor, ciphers, kdf, keys
from chatd.crypto.envelope import EnvelopeError, Identity, pq_available

PROG = "chatd-crypt"
PASSWORD_ENV = "CHATD_CRYPT_PASSWORD"
EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse has printed the usage error or the help
        return int(exc.code or 0)
    try:
        return int(args.run(args))
    except (CryptError, EnvelopeError) as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"{exc.filename or 'I/O'}: {exc.strerror or exc}")
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:  # the promise is one line, never a traceback
        _fail(f"internal error ({type(exc).__name__})")
    return EXIT_FAILED


def _fail(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)


# -- encrypt / decrypt -------------------------------------------------------------


def encrypt(args: argparse.Namespace) -> int:
    """Encrypt the input; write armored text, or binary with --binary."""
    plaintext = _read_input(args.text, args.infile)
    alg = ciphers.check_algorithm(args.alg)
    nonce = os.urandom(ciphers.NONCE_SIZE[alg])
    if args.key_file:
        _only_key(args)
        header = armor.Header(alg, None, b"", nonce)
        key = keys.read_raw_key(Path(args.key_file))
    else:
        spec = kdf.for_cost(args.kdf, args.cost)
        header = armor.Header(alg, spec, os.urandom(kdf.SALT_SIZE), nonce)
        key = kdf.derive(spec, _password(args, confirm=True), header.salt)
    ciphertext = ciphers.encrypt(alg, key, nonce, plaintext, header.aad)
    if args.binary:
        _write_output(args.out, armor.to_binary(header, ciphertext), binary=True)
    else:
        _write_output(args.out, (armor.to_armor(header, ciphertext) + "\n").encode())
    return 0


def decrypt(args: argparse.Namespace) -> int:
    """Decrypt armored or binary input (detected) with the password or key."""
    data = _read_input(args.text, args.infile)
    header, ciphertext = armor.parse(data)
    if header.kdf is None:
        if not args.key_file:
            raise CryptError("this data was encrypted with a raw key: use --key-file")
        key = keys.read_raw_key(Path(args.key_file))
    else:
        if args.key_file:
            raise CryptError("this data was encrypted with a password, not a key file")
        key = kdf.derive(header.kdf, _password(args, confirm=False), header.salt)
    plaintext = ciphers.decrypt(header.alg, key, header.nonce, ciphertext, header.aad)
    if args.out and _is_special(Path(args.out)):
        # A pipe or a device (/dev/stdout, a FIFO a program reads) takes the plaintext
        # as it is: renamed over, it would become a regular file in their place.
        Path(args.out).write_bytes(plaintext)
    elif args.out:
        keys.write_secret(Path(args.out), plaintext, overwrite=True)
    else:
        sys.stdout.buffer.write(plaintext)
        sys.stdout.buffer.flush()
    return 0


def keygen(args: argparse.Namespace) -> int:
    """Write PREFIX.key (mode 0600) and PREFIX.pub: X25519, plus ML-KEM-768 with --pq."""
    if args.pq and not pq_available():
        raise CryptError("--pq needs ML-KEM-768, which this cryptography build lacks")
    identity = Identity.generate(pq=args.pq)
    private, public = Path(args.out + ".key"), Path(args.out + ".pub")
    keys.write_pair(private, public, identity, overwrite=args.force)
    doc = keys.public_document(identity)
    print(f"private key: {private} (mode 0600; keep it secret)")
    print(f"public key:  {public}")
    print(f"fingerprint: {doc['fingerprint']}")
    print(f"publish it with: {keys.publish_line(identity)}")
    return 0


def _only_key(args: argparse.Namespace) -> None:
    if args.password is not None or args.password_file or args.password_fd is not None:
        raise CryptError("give a password or --key-file, not both")


# -- input, output, password -----------------------------------------------------


def _read_input(text: str | None, infile: str | None) -> bytes:
    if text is not None and infile is not None:
        raise CryptError("give the input as an argument or with --in, not both")
    if text is not None:
        return text.encode("utf-8")
    if infile is not None and infile != "-":
        return Path(infile).read_bytes()
    return sys.stdin.buffer.read()


def _is_special(path: Path) -> bool:
    """Whether ``path`` (or what it links to) exists and is not a regular file."""
    return path.exists() and not path.is_file() and not path.is_dir()


def _write_output(out: str | None, data: bytes, binary: bool = False) -> None:
    if out:
        Path(out).write_bytes(data)
        return
    if binary and sys.stdout.isatty():
        raise CryptError("--binary output to a terminal: use --out FILE")
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def _password(args: argparse.Namespace, confirm: bool) -> bytes:
    """The password from exactly one source, in the documented order."""
    given = [s for s in (args.password, args.password_file, args.password_fd) if s is not None]
    if len(given) > 1:
        raise CryptError("give one of --password, --password-file and --password-fd")
    if args.password is not None:
        password = str(args.password).encode("utf-8")
    elif args.password_file is not None:
        password = keys.read_password_line(Path(args.password_file))
    elif args.password_fd is not None:
        password = _read_fd(args.password_fd)
    elif os.environ.get(PASSWORD_ENV):
        password = os.environ[PASSWORD_ENV].encode("utf-8")
    else:
        password = _prompt(confirm)
    if not password:
        raise CryptError("the password is empty")
    return password


def _read_fd(fd: int) -> bytes:
    """A password written to an inherited pipe (how chatd passes it: never on argv)."""
    try:
        with os.fdopen(fd, "rb") as pipe:
            data = pipe.read()
    except OSError:
        raise CryptError(f"cannot read the password from file descriptor {fd}") from None
    return data[:-1] if data.endswith(b"\n") else data


def _prompt(confirm: bool) -> bytes:
    try:
        with open("/dev/tty"):  # only probing: getpass itself reads the terminal
            pass
    except OSError:
        raise CryptError(f"no password: use --password-file, --password-fd, ${PASSWORD_ENV}, "
                         "--password, or --key-file") from None
    password = getpass.getpass("Password: ")
    if confirm and getpass.getpass("Again: ") != password:
        raise CryptError("the passwords differ")
    return password.encode("utf-8")


# -- the parser ----------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Encrypt and decrypt with a password or a key; make keys.",
        epilog="docs/CRYPT.md describes the format, the cost levels and the exit codes.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    enc = sub.add_parser("encrypt", help=encrypt.__doc__)
    enc.add_argument("--alg", default=ciphers.AES_GCM, choices=ciphers.ALGORITHMS)
    enc.add_argument("--cost", default="medium", choices=kdf.COSTS,
                     help="KDF work: low, medium (default) or high")
    enc.add_argument("--kdf", default="scrypt", choices=kdf.KDFS)
    enc.add_argument("--binary", action="store_true", help="binary output (use with --out)")
    enc.set_defaults(run=encrypt)
    dec = sub.add_parser("decrypt", help=decrypt.__doc__)
    dec.set_defaults(run=decrypt)
    for command in (enc, dec):
        command.add_argument("text", nargs="?", help="the input (default: --in or stdin)")
        command.add_argument("--in", dest="infile", metavar="FILE", help="read FILE ('-': stdin)")
        command.add_argument("--out", metavar="FILE", help="write FILE instead of stdout")
        _secret_options(command)
    gen = sub.add_parser("keygen", help=keygen.__doc__)
    gen.add_argument("--out", default="chatd-e2e", metavar="PREFIX",
                     help="write PREFIX.key and PREFIX.pub (default: chatd-e2e)")
    gen.add_argument("--pq", action="store_true", help="also an ML-KEM-768 key pair")
    gen.add_argument("--force", action="store_true", help="replace existing files")
    gen.set_defaults(run=keygen)
    return parser


def _secret_options(command: argparse.ArgumentParser) -> None:
    group = command.add_argument_group("password or key (one of)")
    group.add_argument("--password", metavar="P",
                       help="the password (visible to other local users in ps: avoid)")
    group.add_argument("--password-file", metavar="FILE", help="first line of FILE")
    group.add_argument("--password-fd", type=int, metavar="FD",
                       help="read it from an inherited file descriptor")
    group.add_argument("--key-file", metavar="FILE", help="a raw 32-byte key instead")


if __name__ == "__main__":
    sys.exit(main())
