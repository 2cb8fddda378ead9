"""Tests of the encryption utility and of end-to-end encrypted rooms."""

from chatd.crypto.envelope import pq_available
from tests.services import needed

# The post-quantum hybrid's tests need ML-KEM-768 in the cryptography build.
PQ = needed(pq_available(), "ML-KEM-768 in the cryptography build")
