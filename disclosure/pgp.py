"""Everything that talks to GnuPG (through python-gnupg) lives here.

The team keyring (``GNUPG_HOME``) holds the team's key: generated for development
(``manage.py pgp_generate_team_key``) or imported for production (``pgp_import_team_key``).
python-gnupg never raises on a gpg failure, so every call checks its result and raises
``PGPError`` with gpg's status. Imports into a keyring are serialised with a file lock
(parallel imports into a fresh keyring lose keys). Signing uses a passphrase given with
each call (loopback pinentry), never one cached by gpg-agent.
"""

import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

import gnupg
from django.conf import settings

ZBASE32 = "ybndrfg8ejkmcpqxot1uwisza345h769"


class PGPError(Exception):
    """A gpg operation failed; the message carries gpg's own status."""


@dataclass(frozen=True)
class KeyInfo:
    fingerprint: str
    uids: tuple[str, ...]
    expires: datetime | None
    has_secret: bool

    @property
    def emails(self) -> list[str]:
        return [uid.rsplit("<", 1)[1].rstrip(">").strip().lower() for uid in self.uids if "<" in uid]


def _prepare_home(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


@lru_cache(maxsize=4)
def _gpg(home: str) -> gnupg.GPG:
    if shutil.which(settings.GPG_BINARY) is None:
        raise PGPError(f"the gpg binary ({settings.GPG_BINARY}) was not found")
    _prepare_home(Path(home))
    return gnupg.GPG(gpgbinary=settings.GPG_BINARY, gnupghome=home)


def team_gpg() -> gnupg.GPG:
    return _gpg(str(settings.GNUPG_HOME))


@contextmanager
def keyring_lock(home: Path | None = None):
    """Serialise changes to a keyring across threads and processes."""
    home = _prepare_home(Path(home or settings.GNUPG_HOME))
    with open(home / ".portal-lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _key_info(raw) -> KeyInfo:
    expires = datetime.fromtimestamp(int(raw["expires"]), UTC) if raw.get("expires") else None
    return KeyInfo(raw["fingerprint"], tuple(raw.get("uids") or ()), expires, False)


# --- The team key ---------------------------------------------------------------------------
def team_fingerprint() -> str:
    return (settings.TEAM_KEY_FINGERPRINT or "").replace(" ", "").upper()


def team_key() -> KeyInfo | None:
    """The configured team key as found in the keyring, or None when there is none."""
    fingerprint = team_fingerprint()
    if not fingerprint:
        return None
    gpg = team_gpg()
    public = [k for k in gpg.list_keys(keys=[fingerprint]) if k["fingerprint"] == fingerprint]
    if not public:
        return None
    secret = any(k["fingerprint"] == fingerprint for k in gpg.list_keys(secret=True, keys=[fingerprint]))
    info = _key_info(public[0])
    return KeyInfo(info.fingerprint, info.uids, info.expires, secret)


def secret_fingerprints() -> list[str]:
    return [k["fingerprint"] for k in team_gpg().list_keys(secret=True)]


def generate_team_key(email: str, name: str, expire: str = "2y") -> str:
    """Create an ed25519/cv25519 team key without a passphrase (development)."""
    gpg = team_gpg()
    spec = gpg.gen_key_input(key_type="EDDSA", key_curve="ed25519", subkey_type="ECDH", subkey_curve="cv25519",
                             name_real=name, name_email=email, expire_date=expire, no_protection=True)
    with keyring_lock():
        result = gpg.gen_key(spec)
    if not result.fingerprint:
        raise PGPError(f"key generation failed: {result.status or result.stderr[-200:]}")
    return result.fingerprint


def import_team_key(armored: str) -> list[str]:
    """Import a key (public or secret) into the team keyring; returns its fingerprints."""
    gpg = team_gpg()
    with keyring_lock():
        result = gpg.import_keys(armored)
    if not result.fingerprints:
        raise PGPError(f"nothing was imported: {result.summary() or 'no key found in the input'}")
    return sorted(set(result.fingerprints))


def export_public(fingerprint: str, *, armor: bool = True):
    data = team_gpg().export_keys(fingerprint, armor=armor)
    if not data:
        raise PGPError(f"the key {fingerprint} is not in the keyring")
    return data


def clearsign(text: str, fingerprint: str) -> str:
    """An OpenPGP cleartext-signed copy of ``text`` made with the team key."""
    result = team_gpg().sign(text, keyid=fingerprint, clearsign=True, passphrase=settings.TEAM_KEY_PASSPHRASE or None)
    if result.status != "signature created" or not result.data:
        raise PGPError(f"signing failed: {result.status or result.stderr[-200:]}")
    return result.data.decode("utf-8")


@contextmanager
def scratch_keyring():
    """A throw-away keyring for verifying with keys we do not want to keep."""
    home = tempfile.mkdtemp(prefix="disclosure-gpg-")
    try:
        yield gnupg.GPG(gpgbinary=settings.GPG_BINARY, gnupghome=home)
    finally:
        stop_agent(home)
        shutil.rmtree(home, ignore_errors=True)


def stop_agent(home) -> None:
    """gpg-agent outlives the process, one per keyring: stop it when a keyring is discarded."""
    if shutil.which("gpgconf"):
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"],  # noqa: S603, S607
                       capture_output=True, timeout=10, check=False)


def verify_with(signed: str, public_key: str) -> str | None:
    """The fingerprint that made a valid signature on ``signed``, using only ``public_key``."""
    with scratch_keyring() as gpg:
        if not gpg.import_keys(public_key).fingerprints:
            raise PGPError("the public key could not be read")
        result = gpg.verify(signed)
        return result.fingerprint if result.valid else None


# --- Web Key Directory (the "direct" method) ------------------------------------------------
def zbase32(data: bytes) -> str:
    bits = "".join(f"{byte:08b}" for byte in data)
    return "".join(ZBASE32[int(bits[i:i + 5].ljust(5, "0"), 2)] for i in range(0, len(bits), 5))


def wkd_hash(local_part: str) -> str:
    """The WKD hash of an address's local part (SHA-1 of the lower-cased part, z-base-32)."""
    return zbase32(hashlib.sha1(local_part.lower().encode("utf-8"), usedforsecurity=False).digest())
