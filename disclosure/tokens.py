"""Secret links are passwords: generated with ``secrets``, shown once, stored as a hash.

A token carries 256 random bits and is looked up by its SHA-256 in the database: timing
of that lookup tells a guesser nothing useful about any real token's hash."""

import hashlib
import secrets

TOKEN_BYTES = 32  # 256 bits


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()

