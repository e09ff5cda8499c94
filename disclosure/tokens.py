"""Secret links are passwords: generated with ``secrets``, shown once, stored as a hash."""

import hashlib
import hmac
import secrets

TOKEN_BYTES = 32  # 256 bits


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def hashes_match(stored_hash: str, token: str) -> bool:
    return hmac.compare_digest(stored_hash, token_hash(token))
