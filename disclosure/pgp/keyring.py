"""The only module that talks to GnuPG (through python-gnupg): the team keyring, and
every gpg run the portal makes (sign, encrypt, decrypt, check, import).

The team keyring (``GNUPG_HOME``) holds the team's key: generated for development
(``manage.py pgp_generate_team_key``) or imported for production (``pgp_import_team_key``).
python-gnupg never raises on a gpg failure, so every call checks its result and raises
``PGPError`` with gpg's status. Imports into a keyring are serialised with a file lock
(parallel imports into a fresh keyring lose keys). Signing uses a passphrase given with
each call (loopback pinentry), never one cached by gpg-agent.
"""

import fcntl
import hashlib
import logging
import os
import re
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path

import gnupg
from django.conf import settings

log = logging.getLogger(__name__)
ENC_TO = re.compile(r"\[GNUPG:\] ENC_TO ([0-9A-F]{16})")  # gpg's status line for each recipient
ZBASE32 = "ybndrfg8ejkmcpqxot1uwisza345h769"


class PGPError(Exception):
    """A gpg operation failed; the message carries gpg's own status."""


# The team is warned (system check, weekly email, /healthz) once the key expires within this.
KEY_EXPIRY_WARNING = timedelta(days=30)


@dataclass(frozen=True)
class KeyInfo:
    fingerprint: str
    uids: tuple[str, ...]
    expires: datetime | None
    created: datetime | None = None
    can_sign: bool = False  # the secret of a usable signing (sub)key is in the keyring
    can_decrypt: bool = False  # the secret of a usable encryption (sub)key is in the keyring

    @property
    def grouped_fingerprint(self) -> str:
        """The fingerprint as people compare it: groups of four, e.g. ``ABCD 1234 ...``."""
        return " ".join(self.fingerprint[i:i + 4] for i in range(0, len(self.fingerprint), 4))

    def expires_soon(self, now: datetime) -> bool:
        return self.expires is not None and self.expires - now < KEY_EXPIRY_WARNING

    @property
    def emails(self) -> list[str]:
        return [uid.rsplit("<", 1)[1].rstrip(">").strip().lower() for uid in self.uids if "<" in uid]


def _prepare_home(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


@lru_cache(maxsize=4)
def _gpg(binary: str, home: str) -> gnupg.GPG:
    """A python-gnupg handle per (binary, keyring); python-gnupg runs the binary once to
    learn its version, so the handle is kept."""
    if shutil.which(binary) is None:
        raise PGPError(f"the gpg binary ({binary}) was not found")
    _prepare_home(Path(home))
    return gnupg.GPG(gpgbinary=binary, gnupghome=home)


def team_gpg() -> gnupg.GPG:
    """The team keyring's handle; with ``TEAM_KEY_FILE``, the key is imported into it first
    (once per process and key file: ``import_team_key_file``)."""
    gpg = _gpg(settings.GPG_BINARY, str(settings.GNUPG_HOME))
    if settings.TEAM_KEY_FILE:
        import_team_key_file(gpg)
    return gpg


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
    created = datetime.fromtimestamp(int(raw["date"]), UTC) if raw.get("date") else None
    return KeyInfo(raw["fingerprint"], tuple(raw.get("uids") or ()), expires, created)


def _secret_capabilities(raw) -> set[str]:
    """Which of "s" (sign) and "e" (encrypt) the secret key listing ``raw`` can do here:
    a (sub)key counts when its secret is present (gpg's token "+", not the "#" of a stub
    whose secret is kept elsewhere) and it is neither expired nor revoked."""
    parts = [(raw.get("cap", ""), raw.get("token"), raw.get("trust"))]
    parts += [(sub.get("cap", ""), sub.get("token"), sub.get("trust"))
              for sub in (raw.get("subkey_info") or {}).values()]
    usable = set()
    for cap, token, trust in parts:
        if token == "+" and trust not in ("e", "r"):
            usable |= {letter for letter in "se" if letter in (cap or "")}
    return usable


# --- The team key ---------------------------------------------------------------------------
def team_fingerprint() -> str:
    return (settings.TEAM_KEY_FINGERPRINT or "").replace(" ", "").upper()


def previous_fingerprints() -> list[str]:
    """Former team keys (``TEAM_KEY_PREVIOUS_FINGERPRINTS``), still used for decrypting."""
    return [fpr for fpr in settings.TEAM_KEY_PREVIOUS_FINGERPRINTS if fpr and fpr != team_fingerprint()]


# What the keyring says about the team key, remembered per process for as long as the
# keyring files are unchanged: the memo's key is the keyring's state (GNUPG_HOME, the
# configured fingerprint, and the identity, size and time of the public and secret key
# stores, and the gpg binary), so an import, deletion or generation by any process is seen
# at once.
# ``forget()`` is its one reset.
_keyring_memo: dict = {}


def _from_keyring(name: str, read):
    home = Path(settings.GNUPG_HOME)
    key = (name, settings.GPG_BINARY, str(home), team_fingerprint(), _keyring_stamp(home))
    if key not in _keyring_memo:
        if len(_keyring_memo) > 32:
            _keyring_memo.clear()
        _keyring_memo[key] = read()
    return _keyring_memo[key]


def forget() -> None:
    """Drop what this process remembers about the keyring."""
    _keyring_memo.clear()
    _key_file_imported.clear()


def _keyring_stamp(home: Path) -> tuple:
    """Changes whenever a process imports into the keyring: public keys (keybox or the
    older format) or secret keys."""
    stamp = []
    for name in ("pubring.kbx", "pubring.gpg", "private-keys-v1.d"):
        try:
            stat = (home / name).stat()
        except OSError:
            stamp.append(None)
        else:
            stamp.append((stat.st_ino, stat.st_size, stat.st_mtime_ns))
    return tuple(stamp)


def team_key() -> KeyInfo | None:
    """The configured team key as found in the keyring, or None when there is none."""
    if not team_fingerprint():
        return None
    return _from_keyring("team_key", _read_team_key)


def _read_team_key() -> KeyInfo | None:
    fingerprint = team_fingerprint()
    gpg = team_gpg()
    public = [k for k in gpg.list_keys(keys=[fingerprint]) if k["fingerprint"] == fingerprint]
    if not public:
        return None
    secret = [k for k in gpg.list_keys(secret=True, keys=[fingerprint]) if k["fingerprint"] == fingerprint]
    usable = _secret_capabilities(secret[0]) if secret else set()
    info = _key_info(public[0])
    return KeyInfo(info.fingerprint, info.uids, info.expires, info.created, can_sign="s" in usable,
                   can_decrypt="e" in usable)


def can_sign() -> bool:
    """Whether the team key can sign here (security.txt, outgoing email)."""
    key = team_key()
    return key is not None and key.can_sign


def can_decrypt() -> bool:
    """Whether the team key can decrypt here (sealed content, checking encrypted reports).
    Offline-key mode keeps the encryption secret elsewhere, perhaps with signing here."""
    key = team_key()
    return key is not None and key.can_decrypt


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
    forget()
    if not result.fingerprints:
        raise PGPError(f"nothing was imported: {result.summary() or 'no key found in the input'}")
    return sorted(set(result.fingerprints))


# --- The team key from a secret (TEAM_KEY_FILE) ----------------------------------------------
# (GNUPG_HOME, key file, its size and time) already imported by this process.
_key_file_imported: set = set()


def import_team_key_file(gpg: gnupg.GPG | None = None) -> str:
    """Make sure the keyring at ``GNUPG_HOME`` holds the key in ``TEAM_KEY_FILE`` (an armored
    secret or public key: a platform secret or a mounted file), so a host needs no
    persistent keyring. Returns the fingerprint.

    Every process calls it before it uses the keyring (``team_gpg()`` does, once per process
    and key file; WSGI start-up and the worker call it explicitly, to refuse to start on a
    bad key). Safe when several processes start at once on a fresh keyring: the check and
    the import happen under the keyring's file lock, and a keyring that already holds the
    key (with its secret, when the file has one) is left alone. Raises ``PGPError`` naming
    the problem when the file cannot be read, holds no key, or does not hold the key
    ``TEAM_KEY_FINGERPRINT`` names."""
    path, fingerprint = Path(settings.TEAM_KEY_FILE), team_fingerprint()
    home = str(settings.GNUPG_HOME)
    try:
        stat = path.stat()
    except OSError as error:
        raise PGPError(f"TEAM_KEY_FILE {path} cannot be read: {error.strerror or error}") from None
    memo = (home, str(path), stat.st_size, stat.st_mtime_ns)
    if memo in _key_file_imported:
        return fingerprint
    gpg = gpg or _gpg(settings.GPG_BINARY, home)
    try:
        armored = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as error:
        raise PGPError(f"TEAM_KEY_FILE {path} cannot be read as an ASCII-armored key: {error}") from None
    found = {key["fingerprint"]: key["type"] for key in gpg.scan_keys_mem(armored)}
    if not found:
        raise PGPError(f"TEAM_KEY_FILE {path} holds no OpenPGP key (export it with gpg --export-secret-keys --armor, "
                       "or gpg --export --armor for the public key only).")
    if not fingerprint:
        raise PGPError(f"TEAM_KEY_FILE is set but TEAM_KEY_FINGERPRINT is not: set it to the key's fingerprint "
                       f"({', '.join(sorted(found))}) so a replaced secret cannot change the team key unnoticed.")
    if fingerprint not in found:
        raise PGPError(f"TEAM_KEY_FILE {path} does not hold the key TEAM_KEY_FINGERPRINT names ({fingerprint}); it "
                       f"holds {', '.join(sorted(found))}. Correct TEAM_KEY_FINGERPRINT or the secret.")
    secret = found[fingerprint] == "sec"
    with keyring_lock(Path(home)):
        if not _holds(gpg, fingerprint, secret=secret):
            result = gpg.import_keys(armored)
            if not _holds(gpg, fingerprint, secret=secret):
                raise PGPError(f"importing TEAM_KEY_FILE {path} into {home} failed: "
                               f"{result.summary() or result.stderr[-200:]}")
            log.info("Imported the team key %s (%s) from TEAM_KEY_FILE into %s", fingerprint,
                     "secret" if secret else "public only", home)
    _keyring_memo.clear()
    _key_file_imported.add(memo)
    return fingerprint


def _holds(gpg: gnupg.GPG, fingerprint: str, *, secret: bool) -> bool:
    keys = gpg.list_keys(secret=secret, keys=[fingerprint])
    return any(key["fingerprint"] == fingerprint for key in keys)


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


def clearsign_by_all(text: str, fingerprints: list[str]) -> str:
    """``text`` cleartext-signed by each of the team keyring's keys ``fingerprints`` in one
    message (``gpg --local-user A --local-user B --clearsign``); ``TEAM_KEY_PASSPHRASE``
    unlocks each secret that has one."""
    args = [arg for fingerprint in fingerprints for arg in ("--local-user", fingerprint)]
    result = team_gpg().sign(text, clearsign=True, extra_args=args, passphrase=settings.TEAM_KEY_PASSPHRASE or None)
    if result.status != "signature created" or not result.data:
        raise PGPError(f"signing failed: {result.status or result.stderr[-200:]}")
    return result.data.decode("utf-8")


def good_signers(signed: str) -> set[str]:
    """The keys (primary fingerprints) of the team keyring that made a valid signature on
    the cleartext-signed ``signed``; a message may carry several signatures."""
    result = team_gpg().verify(signed)
    return {info.get("pubkey_fingerprint") or info["fingerprint"] for info in result.sig_info.values()
            if info.get("status") == "signature valid" and info.get("fingerprint")}


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


# --- Messages encrypted to the team ---------------------------------------------------------
ARMORED_MESSAGE = re.compile(r"-----BEGIN PGP MESSAGE-----\r?\n.*?-----END PGP MESSAGE-----", re.DOTALL)
BEGIN_MESSAGE = "-----BEGIN PGP MESSAGE-----"


def looks_encrypted(text: str) -> bool:
    return BEGIN_MESSAGE in (text or "")


def is_armored_message_file(data: bytes) -> bool:
    """A file counts as a PGP message when it starts (after blank space) with the armor line."""
    return data.lstrip()[:len(BEGIN_MESSAGE)] == BEGIN_MESSAGE.encode()


def looks_like_pgp(text: str) -> bool:
    """An encrypted message, or a signed one (which we refuse: it is not confidential)."""
    return looks_encrypted(text) or "-----BEGIN PGP SIGNED MESSAGE-----" in (text or "")


def team_encryption_key_ids() -> frozenset[str]:
    """The key IDs of the team key and its subkeys."""
    return key_ids(team_fingerprint())


def key_ids(*fingerprints: str) -> frozenset[str]:
    """The key IDs of these keys and their subkeys, as found in the team keyring."""
    def read():
        ids = set()
        for key in team_gpg().list_keys(keys=list(fingerprints)):
            if key["fingerprint"] in fingerprints:
                ids.add(key["keyid"])
                ids.update(sub[0] for sub in key.get("subkeys") or [])
        return frozenset(ids)

    if not any(fingerprints):
        return frozenset()
    return _from_keyring(("key_ids", fingerprints), read)


def accepted_key_ids() -> frozenset[str]:
    """Key IDs a message to the team may be encrypted to: the team key's and its predecessors'."""
    return key_ids(team_fingerprint(), *previous_fingerprints())


def recipient_key_ids(data) -> frozenset[str]:
    """The key IDs an OpenPGP message says it is encrypted to (without decrypting it)."""
    listing = team_gpg().decrypt(data, extra_args=["--list-only"])
    return frozenset(item[1] for item in _status(listing.stderr) if item[0] == "ENC_TO" and len(item) > 1)


# Decrypting never produces more than this (gpg's --max-output): a few bytes of compressed
# data can expand to gigabytes. Text fields are at most 50,000 characters.
TEXT_MAX_OUTPUT = 4 * 1024 * 1024


def file_max_output() -> int:
    return 4 * settings.MAX_ATTACHMENT_BYTES


def _status(stderr: str) -> list[list[str]]:
    """gpg's machine-readable status lines (``[GNUPG:] KEYWORD args...``), split."""
    return [line[9:].split() for line in stderr.splitlines() if line.startswith("[GNUPG:] ") and line[9:].strip()]


HIDDEN_RECIPIENT = "0000000000000000"  # gpg --hidden-recipient / throw-keyids: the key ID is not said


@dataclass(frozen=True)
class Plaintext:
    """What an encrypted message holds, learnt by decrypting it once on arrival."""
    size: int
    sha256: str


def check_encrypted_to_team(armored: str, *, max_output: int = TEXT_MAX_OUTPUT) -> Plaintext | None:
    """Raise ``PGPError`` with a message for the researcher unless ``armored`` is one
    well-formed PGP message encrypted to the team key (and, when the team key can decrypt
    here, one that actually decrypts, to at most ``max_output`` bytes). Returns the size
    and SHA-256 of the plaintext when it was decrypted, else None.

    A hidden recipient (``--hidden-recipient``, ``throw-keyids``) names no key: it is
    accepted when it decrypts with the team key, or, when the key cannot decrypt here
    (offline-key mode), taken on trust for the team to decrypt on their own machines.
    """
    text = armored.strip()
    if "-----BEGIN PGP SIGNED MESSAGE-----" in text:
        raise PGPError("This is a signed message, not an encrypted one. Encrypt it to our key instead "
                       "(gpg --encrypt --armor --recipient <our fingerprint>).")
    blocks = ARMORED_MESSAGE.findall(text)
    if len(blocks) != 1 or blocks[0].strip() != text:
        raise PGPError("The encrypted message is not a complete ASCII-armored block: it must start with "
                       "-----BEGIN PGP MESSAGE----- and end with -----END PGP MESSAGE-----, with nothing around it.")
    if can_decrypt():
        return _check_by_decrypting(text, max_output)[0]
    listing = team_gpg().decrypt(text, extra_args=["--list-only"])
    recipients = set(ENC_TO.findall(listing.stderr))
    if not recipients:
        _refuse_unreadable(listing.stderr)
    if not recipients & (accepted_key_ids() | {HIDDEN_RECIPIENT}):
        raise PGPError(f"This message is encrypted to a different key ({', '.join(sorted(recipients))}), so we "
                       f"cannot read it. Encrypt it to our key {team_fingerprint()} from /pgp-key.txt.")
    return None


def decrypt_checked(armored: str, *, max_output: int = TEXT_MAX_OUTPUT) -> bytes:
    """The plaintext of an armored message encrypted to the team key (an emailed report),
    under the same rules as ``check_encrypted_to_team`` (one complete block, one
    integrity-protected message, at most ``max_output`` bytes), in one gpg run. Raises
    ``PGPError`` (with the reason) when it does not meet them or cannot be decrypted here."""
    text = armored.strip()
    blocks = ARMORED_MESSAGE.findall(text)
    if len(blocks) != 1 or blocks[0].strip() != text:
        raise PGPError("The encrypted message is not one complete ASCII-armored block.")
    if not can_decrypt():
        check_encrypted_to_team(text, max_output=max_output)  # recipients only; raises for another key
        raise PGPError("The team key cannot decrypt on this server (offline-key mode).")
    return _check_by_decrypting(text, max_output)[1]


@dataclass(frozen=True)
class SignatureCheck:
    status: str  # "good", "unknown" (no key to check it with) or "bad"
    fingerprint: str = ""
    key_id: str = ""


def verify_signature(data: bytes, signature: bytes | None, public_key: str = "") -> SignatureCheck:
    """Check an emailed signature with only ``public_key`` (the reporter's key on file, or
    none) in a throw-away keyring: a detached ``signature`` over ``data`` (PGP/MIME), or,
    when ``signature`` is None, ``data`` as a cleartext-signed message (inline PGP)."""
    with scratch_keyring() as gpg:
        if public_key:
            gpg.import_keys(public_key)
        if signature is None:
            result = gpg.verify(data)
        else:
            sig_path = Path(gpg.gnupghome) / "signature.asc"
            sig_path.write_bytes(signature)
            result = gpg.verify_data(str(sig_path), data)
    return _signature_check(result)


def _signature_check(result) -> SignatureCheck:
    words = {item[0]: item for item in _status(result.stderr or "")}
    if result.valid and "GOODSIG" in words:
        return SignatureCheck("good", result.fingerprint or "", result.key_id or "")
    if "BADSIG" in words or result.status == "signature bad":
        return SignatureCheck("bad", "", result.key_id or "")
    return SignatureCheck("unknown" if ("NO_PUBKEY" in words or "ERRSIG" in words) else "bad", "",
                          result.key_id or "")


def signature_inside(armored: str, public_key: str = "", *, max_output: int = TEXT_MAX_OUTPUT):
    """The signature of a message signed and encrypted in one pass (``gpg --sign --encrypt``)
    to the team key, checked with only ``public_key`` (the reporter's key on file) in a
    throw-away keyring; None when the message is not signed that way. The team keyring
    removes the encryption layer (``--unwrap``: the signed message, still packed), and the
    throw-away keyring verifies it, so the reporter's key never enters the team keyring."""
    passphrase = settings.TEAM_KEY_PASSPHRASE or None
    unwrapped = team_gpg().decrypt(armored, passphrase=passphrase, extra_args=[
        "--unwrap", "--max-output", str(max_output), *([] if passphrase else ["--pinentry-mode", "error"])])
    if not unwrapped.data:
        return None
    with scratch_keyring() as gpg:
        if public_key:
            gpg.import_keys(public_key)
        result = gpg.verify(unwrapped.data)
    if "[GNUPG:] NEWSIG" not in (result.stderr or ""):
        return None  # encrypted, not signed
    return _signature_check(result)


def _check_by_decrypting(text: str, max_output: int) -> tuple[Plaintext, bytes]:
    """One gpg run: exactly one encrypted packet, decrypted with its integrity protection
    intact by the team key, and nothing gpg objected to. (python-gnupg's ``ok`` only says
    that *some* packet decrypted.) Output is capped, so a compression bomb costs no
    memory; without a passphrase gpg must not wait on gpg-agent for one."""
    passphrase = settings.TEAM_KEY_PASSPHRASE or None
    result = team_gpg().decrypt(text, passphrase=passphrase, extra_args=[
        "--max-output", str(max_output), *([] if passphrase else ["--pinentry-mode", "error"])])
    status = _status(result.stderr)
    words = [item[0] for item in status]
    decrypted_by = {item[2] for item in status if item[0] == "DECRYPTION_KEY" and len(item) > 2}
    if len(result.data or b"") >= max_output:  # gpg still says DECRYPTION_OKAY
        raise PGPError(f"This message decrypts to more than {max_output // (1024 * 1024)} MB. Please send "
                       "less, or split it into several files.")
    if (words.count("BEGIN_DECRYPTION") == 1 and words.count("PLAINTEXT") == 1
            and "DECRYPTION_OKAY" in words and "GOODMDC" in words
            and not {"DECRYPTION_FAILED", "BADMDC", "ERROR"} & set(words)
            and decrypted_by & {team_fingerprint(), *previous_fingerprints()}):
        return Plaintext(len(result.data), hashlib.sha256(result.data).hexdigest()), result.data
    recipients = {item[1] for item in status if item[0] == "ENC_TO" and len(item) > 1}
    if not recipients:
        _refuse_unreadable(result.stderr)
    if not recipients & (accepted_key_ids() | {HIDDEN_RECIPIENT}):
        raise PGPError(f"This message is encrypted to a different key ({', '.join(sorted(recipients))}), so we "
                       f"cannot read it. Encrypt it to our key {team_fingerprint()} from /pgp-key.txt.")
    if recipients == {HIDDEN_RECIPIENT} and "NO_SECKEY" in words:
        raise PGPError(f"This message does not name its recipient and our key cannot decrypt it: it is "
                       f"encrypted to a different key. Encrypt it to our key {team_fingerprint()}.")
    raise PGPError("This message could not be decrypted with our key: it is damaged, not integrity "
                   "protected, or holds more than one message. Please encrypt it again.")


def _refuse_unreadable(stderr: str):
    if "[GNUPG:] PLAINTEXT" in stderr:
        raise PGPError("This PGP message is not encrypted (it is only signed or packed). Encrypt it to our key.")
    raise PGPError("The armored block is damaged (its data or checksum is broken). Please copy it again.")


def encrypt_to_team(data, *, armor: bool = True):
    """Encrypt to the team key (ours, validated when it was imported: trusted explicitly)."""
    result = team_gpg().encrypt(data, [team_fingerprint()], armor=armor, always_trust=True)
    if not result.ok:
        raise PGPError(f"encryption to the team key failed: {result.status or 'gpg gave no reason'}")
    return str(result) if armor else result.data


def decrypt(data, *, max_output: int | None = None) -> bytes:
    """Decrypt with the team's secret key; the passphrase is given with every call. The
    output is capped (``TEXT_MAX_OUTPUT``, or ``file_max_output()`` for files)."""
    limit = max_output or file_max_output()
    result = team_gpg().decrypt(data, passphrase=settings.TEAM_KEY_PASSPHRASE or None,
                                extra_args=["--max-output", str(limit)])
    if not result.ok:
        raise PGPError(f"decryption failed: {result.status or 'no valid OpenPGP data'}")
    if len(result.data) >= limit:
        raise PGPError(f"decryption failed: the plaintext is larger than {limit} bytes")
    return result.data


def decrypt_to_file(source):
    """Decrypt the open file ``source`` with the team's secret key into a private temporary
    file (in a folder of mode 0700, unlinked as soon as gpg has written it), returned open
    at its start: a download streams from it without holding the file in memory. Output is
    capped like ``decrypt``'s."""
    limit = file_max_output()
    folder = tempfile.mkdtemp(prefix="disclosure-plain-")
    path = Path(folder) / "plain"
    try:
        result = team_gpg().decrypt_file(source, output=str(path), passphrase=settings.TEAM_KEY_PASSPHRASE or None,
                                         extra_args=["--max-output", str(limit)])
        if not result.ok:
            raise PGPError(f"decryption failed: {result.status or 'no valid OpenPGP data'}")
        plain = open(path, "rb")  # noqa: SIM115 - returned open; the caller (a FileResponse) closes it
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if os.fstat(plain.fileno()).st_size >= limit:
        plain.close()
        raise PGPError(f"decryption failed: the plaintext is larger than {limit} bytes")
    return plain


# --- Reporters' keys (never imported into the team keyring) ---------------------------------
@dataclass(frozen=True)
class ReporterKey:
    fingerprint: str
    armored: str
    uids: tuple[str, ...]
    expires: datetime | None


def inspect_reporter_key(armored: str) -> ReporterKey:
    """Validate a reporter's public key in a scratch keyring; return a minimal copy of it."""
    armored = (armored or "").strip()
    if len(armored.encode()) > settings.REPORTER_KEY_MAX_BYTES:
        raise PGPError(f"This key is larger than {settings.REPORTER_KEY_MAX_BYTES // 1024} KiB. Export it with "
                       "gpg --export --armor --export-options export-minimal <your key>.")
    if "PRIVATE KEY BLOCK" in armored:
        raise PGPError("This is a secret (private) key. Never share it: paste your public key "
                       "(gpg --export --armor <your key>).")
    if "-----BEGIN PGP PUBLIC KEY BLOCK-----" not in armored:
        raise PGPError("Paste an ASCII-armored public key (it starts with -----BEGIN PGP PUBLIC KEY BLOCK-----).")
    with scratch_keyring() as gpg:
        imported = gpg.import_keys(armored)
        fingerprints = sorted(set(imported.fingerprints))
        if not fingerprints:
            raise PGPError("This public key could not be read. Please export it again.")
        if len(fingerprints) > 1:
            raise PGPError("Paste a single public key, not several.")
        [raw] = gpg.list_keys(keys=fingerprints)
        if raw.get("trust") == "r":
            raise PGPError("This key has been revoked.")
        if raw.get("trust") == "e":
            raise PGPError("This key has expired. Extend it or paste a current key.")
        if "E" not in (raw.get("cap") or ""):
            raise PGPError("This key has no usable encryption subkey, so we could not encrypt to it.")
        if len(raw.get("uids") or []) > settings.REPORTER_KEY_MAX_UIDS:
            raise PGPError(f"This key has more than {settings.REPORTER_KEY_MAX_UIDS} user IDs.")
        minimal = gpg.export_keys(fingerprints[0], armor=True, minimal=True)
    info = _key_info(raw)
    return ReporterKey(info.fingerprint, minimal, info.uids, info.expires)


def encrypt_for(public_key: str, data, *, armor: bool = True):
    """Encrypt to a reporter's key, imported only into a throw-away keyring for this call.

    The key was validated when the reporter gave it, so it is trusted explicitly.
    """
    with scratch_keyring() as gpg:
        fingerprints = gpg.import_keys(public_key).fingerprints
        if not fingerprints:
            raise PGPError("the reporter's key could not be read")
        result = gpg.encrypt(data, [fingerprints[0]], armor=armor, always_trust=True)
    if not result.ok:
        raise PGPError(f"encryption to the reporter's key failed: {result.status}")
    return str(result) if armor else result.data


HASH_NAMES = {"2": "sha1", "8": "sha256", "9": "sha384", "10": "sha512", "11": "sha224"}


def detached_sign(data: bytes) -> tuple[str, str]:
    """An armored detached signature of ``data`` with the team key, and its micalg name."""
    result = team_gpg().sign(data, keyid=team_fingerprint(), detach=True, binary=False,
                             passphrase=settings.TEAM_KEY_PASSPHRASE or None)
    if result.status != "signature created" or not result.data:
        raise PGPError(f"signing failed: {result.status or result.stderr[-200:]}")
    return result.data.decode("ascii"), "pgp-" + HASH_NAMES.get(str(result.hash_algo), "sha256")


# --- Backups: streams through gpg, never in clear on disk ------------------------------------
def backup_recipients() -> list[str]:
    """Who a backup is encrypted to: the team key, and ``BACKUP_KEY_FINGERPRINT`` (an
    offline key whose public half was imported into the team keyring) when set."""
    if not team_fingerprint():
        raise PGPError("no team key is configured (TEAM_KEY_FINGERPRINT): a backup is never written unencrypted")
    extra = (settings.BACKUP_KEY_FINGERPRINT or "").replace(" ", "").upper()
    return [team_fingerprint(), *([extra] if extra and extra != team_fingerprint() else [])]


def _gpg_command(*args: str) -> list[str]:
    binary = shutil.which(settings.GPG_BINARY)
    if binary is None:
        raise PGPError(f"the gpg binary ({settings.GPG_BINARY}) was not found")
    home = _prepare_home(Path(settings.GNUPG_HOME))
    if settings.TEAM_KEY_FILE:
        import_team_key_file()  # a new host's empty keyring (manage.py restore) gets the key first
    return [binary, "--homedir", str(home), "--batch", "--no-tty", "--yes", "--status-fd", "2", *args]


def _gpg_failure(stderr, what: str) -> PGPError:
    stderr.seek(0)
    text = stderr.read().decode("utf-8", "replace")
    reasons = [line[9:] for line in text.splitlines() if line.startswith("[GNUPG:] ")
               and line[9:].split()[0] in ("FAILURE", "ERROR", "DECRYPTION_FAILED", "BADMDC", "INV_RECP", "NO_SECKEY",
                                           "NO_PUBKEY", "NODATA")]
    plain = [line for line in text.splitlines() if line.startswith("gpg:")]
    return PGPError(f"{what}: {'; '.join(reasons + plain[-2:]) or 'gpg gave no reason'}")


@contextmanager
def encrypting_to_file(path: Path, recipients: list[str]):
    """A writable binary stream whose bytes gpg encrypts to ``recipients`` into ``path``
    (binary OpenPGP). Raises ``PGPError`` when gpg fails; ``path`` is then removed."""
    command = _gpg_command("--trust-model", "always", "--encrypt",
                           *[arg for fingerprint in recipients for arg in ("--recipient", fingerprint)])
    output = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # readable by this user only
    with tempfile.TemporaryFile() as stderr, os.fdopen(output, "wb") as target:
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=target, stderr=stderr)  # noqa: S603
        try:
            yield process.stdin
            process.stdin.close()
            if process.wait(timeout=600) != 0:
                raise _gpg_failure(stderr, "encrypting the backup failed")
        except BrokenPipeError:  # gpg stopped reading: it refused (e.g. a recipient it does not have)
            process.wait(timeout=60)
            Path(path).unlink(missing_ok=True)
            raise _gpg_failure(stderr, "encrypting the backup failed") from None
        except BaseException:
            if process.poll() is None:
                process.kill()
                process.wait()
            Path(path).unlink(missing_ok=True)
            raise


@contextmanager
def decrypting_file(path: Path):
    """A readable binary stream of the plaintext of the OpenPGP file ``path``, decrypted
    with any secret key in the team keyring. gpg checks the message's integrity only at
    its end: the caller must read the stream to its end, and a ``PGPError`` raised when
    the block exits (damaged, not for our keys, wrong passphrase) voids what was read."""
    passphrase = settings.TEAM_KEY_PASSPHRASE or ""
    read_end, write_end = os.pipe()
    try:
        with os.fdopen(write_end, "wb") as handle:  # small: fits in the pipe's buffer
            handle.write(passphrase.encode("utf-8"))
        args = (["--pinentry-mode", "loopback", "--passphrase-fd", str(read_end)] if passphrase
                else ["--pinentry-mode", "error"])
        with tempfile.TemporaryFile() as stderr:
            process = subprocess.Popen(_gpg_command(*args, "--decrypt", str(path)),  # noqa: S603
                                       stdout=subprocess.PIPE, stderr=stderr, pass_fds=(read_end,))
            try:
                try:
                    yield process.stdout
                except Exception:
                    # What the reader choked on (nothing, or a cut stream) may be gpg's refusal
                    # (no secret key, a damaged packet): then gpg's reason is the one to give.
                    while process.stdout.read(1024 * 1024):
                        pass
                    if process.wait(timeout=600) != 0:
                        raise _gpg_failure(stderr, "the archive could not be decrypted intact") from None
                    raise
                while process.stdout.read(1024 * 1024):
                    pass
                if process.wait(timeout=600) != 0:
                    raise _gpg_failure(stderr, "the archive could not be decrypted intact")
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
                process.stdout.close()
    finally:
        os.close(read_end)
