"""Passwords and bearer tokens.

Passwords: hashlib.scrypt with a random 16-byte salt; the stored string names its parameters so
they can be raised later without breaking old hashes. Tokens: 32 random bytes given to the client
once; only their SHA-256 is stored, so a copy of the database cannot be used to sign in.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from functools import lru_cache

# n=2**14, r=8: 16 MiB and tens of milliseconds per hash — slow for a guesser, fine for a sign-in.
SCRYPT_N, SCRYPT_R, SCRYPT_P, KEY_BYTES = 2**14, 8, 1, 32
_MAX_MEM = 64 * 1024 * 1024


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    key = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${key.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt_hex, key_hex = stored.split("$")
        if scheme != "scrypt":
            return False
        key = _scrypt(password, bytes.fromhex(salt_hex), int(n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(key, bytes.fromhex(key_hex))


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return hash_password(secrets.token_hex(8))


def burn_time(password: str) -> None:
    """Verify against a throw-away hash when the username does not exist: the answer takes as
    long either way, so response times do not reveal which usernames exist."""
    verify_password(password, _dummy_hash())


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=_MAX_MEM, dklen=KEY_BYTES
    )


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_id() -> str:
    """Random ids: nothing can be learnt or guessed from them (no counters)."""
    return secrets.token_hex(8)
