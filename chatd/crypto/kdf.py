"""Password-based key derivation at documented cost levels.

Each level maps to concrete parameters (see docs/CRYPT.md). The parameters
travel in the armored header, so decryption never needs the level; but they
come from untrusted input then, so :func:`parse` bounds them: a forged header
must not make us allocate gigabytes or spin for minutes.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from chatd.crypto import CryptError

COSTS = ("low", "medium", "high")
KDFS = ("scrypt", "pbkdf2")
KEY_SIZE = 32
SALT_SIZE = 16

# scrypt: n (CPU/memory cost, a power of two), r (block size), p (parallelism);
# memory is 128 * n * r bytes: 16 MiB, 128 MiB, 256 MiB.
SCRYPT_COSTS: dict[str, dict[str, int]] = {
    "low": {"n": 2**14, "r": 8, "p": 1},
    "medium": {"n": 2**17, "r": 8, "p": 1},
    "high": {"n": 2**18, "r": 8, "p": 1},
}
# PBKDF2-HMAC-SHA256 iterations; medium is OWASP's 2023 recommendation.
PBKDF2_COSTS: dict[str, dict[str, int]] = {
    "low": {"i": 100_000},
    "medium": {"i": 600_000},
    "high": {"i": 2_000_000},
}
# The armored names of the two KDFs.
SCRYPT, PBKDF2 = "scrypt", "pbkdf2-sha256"

# Bounds for parameters read from a header (generous around the levels above).
_SCRYPT_N = (2**10, 2**20)
_SCRYPT_R = (1, 32)
_SCRYPT_P = (1, 16)
_SCRYPT_MAX_MEMORY = 1 << 30
_PBKDF2_I = (1_000, 10_000_000)


@dataclass(frozen=True, slots=True)
class KdfSpec:
    """A KDF and its parameters, as written in a header (``n=16384,r=8,p=1``)."""

    name: str
    params: tuple[tuple[str, int], ...]

    @property
    def text(self) -> str:
        return ",".join(f"{key}={value}" for key, value in self.params)

    def get(self, key: str) -> int:
        return dict(self.params)[key]


def for_cost(kdf: str, cost: str) -> KdfSpec:
    """The spec of ``kdf`` ("scrypt" or "pbkdf2") at ``cost`` (low, medium, high)."""
    if cost not in COSTS:
        raise CryptError(f"cost is one of {', '.join(COSTS)}")
    if kdf == "scrypt":
        return KdfSpec(SCRYPT, tuple(SCRYPT_COSTS[cost].items()))
    if kdf == "pbkdf2":
        return KdfSpec(PBKDF2, tuple(PBKDF2_COSTS[cost].items()))
    raise CryptError(f"kdf is one of {', '.join(KDFS)}")


def parse(name: str, text: str) -> KdfSpec:
    """A spec read from a header; refuses unknown KDFs and out-of-bounds values."""
    try:
        pairs = [item.split("=", 1) for item in text.split(",")]
        params = tuple((key, int(value)) for key, value in pairs)
    except ValueError:
        raise CryptError("damaged header: bad KDF parameters") from None
    spec = KdfSpec(name, params)
    keys = [key for key, _ in params]
    if name == SCRYPT and keys == ["n", "r", "p"]:
        _check_scrypt(spec)
    elif name == PBKDF2 and keys == ["i"]:
        _within("i", spec.get("i"), _PBKDF2_I)
    else:
        raise CryptError(f"unsupported KDF {name!r} with parameters {text!r}")
    return spec


def _check_scrypt(spec: KdfSpec) -> None:
    n, r, p = spec.get("n"), spec.get("r"), spec.get("p")
    _within("n", n, _SCRYPT_N)
    _within("r", r, _SCRYPT_R)
    _within("p", p, _SCRYPT_P)
    if n & (n - 1):
        raise CryptError("damaged header: scrypt n must be a power of two")
    if 128 * n * r > _SCRYPT_MAX_MEMORY:
        raise CryptError("scrypt parameters need more than 1 GiB of memory; refused")


def _within(key: str, value: int, bounds: tuple[int, int]) -> None:
    low, high = bounds
    if not low <= value <= high:
        raise CryptError(f"KDF parameter {key}={value} is outside {low}..{high}; refused")


def costlier_than(spec: KdfSpec, cost: str) -> bool:
    """Whether ``spec`` asks for more memory or work than its KDF at ``cost``: what
    chatd-crypt never writes, only a header made by hand does (within the bounds of
    :func:`parse`, up to 1 GiB and many seconds)."""
    if spec.name == SCRYPT:
        level = SCRYPT_COSTS[cost]
        n, r, p = spec.get("n"), spec.get("r"), spec.get("p")
        # scrypt's memory is 128 * n * r bytes; its work grows with n * r * p.
        return n * r > level["n"] * level["r"] or n * r * p > level["n"] * level["r"] * level["p"]
    return spec.get("i") > PBKDF2_COSTS[cost]["i"]


def derive(spec: KdfSpec, password: bytes, salt: bytes) -> bytes:
    """A 32-byte key from ``password``. CPU- and memory-heavy by design:
    call it in a worker process or thread, never on an event loop."""
    if spec.name == SCRYPT:
        n, r, p = spec.get("n"), spec.get("r"), spec.get("p")
        return Scrypt(salt=salt, length=KEY_SIZE, n=n, r=r, p=p).derive(password)
    return PBKDF2HMAC(hashes.SHA256(), KEY_SIZE, salt, spec.get("i")).derive(password)
