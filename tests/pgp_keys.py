"""Real keys in temporary keyrings, made with the real gpg binary."""

import shutil
import subprocess
import tempfile
from pathlib import Path

from django.test import override_settings

from disclosure import pgp, securitytxt

SITE = "https://security.example.com"
TEAM_EMAIL = "security@security.example.com"


class TeamKeyMixin:
    """A class-wide team keyring with a fresh ed25519 team key, and a production-like SITE_URL."""

    team_key_expire = "2y"

    @classmethod
    def setUpClass(cls):
        cls.gnupg_home = tempfile.mkdtemp(prefix="disclosure-test-team-")
        with override_settings(GNUPG_HOME=Path(cls.gnupg_home)):
            cls.fingerprint = pgp.generate_team_key(TEAM_EMAIL, "Example security team", cls.team_key_expire)
        cls._settings = override_settings(
            GNUPG_HOME=Path(cls.gnupg_home), TEAM_KEY_FINGERPRINT=cls.fingerprint, SITE_URL=SITE,
            ALLOWED_HOSTS=["security.example.com", "testserver"], SECURITY_TEAM_EMAIL=TEAM_EMAIL,
        )
        cls._settings.enable()
        # Class cleanups run last-in first-out after tearDownClass: registered before the
        # test case's own class-level overrides, this one is undone after them.
        cls.addClassCleanup(shutil.rmtree, cls.gnupg_home, ignore_errors=True)
        cls.addClassCleanup(pgp.stop_agent, cls.gnupg_home)
        cls.addClassCleanup(cls._settings.disable)
        super().setUpClass()

    def setUp(self):
        super().setUp()
        securitytxt.forget()
        self.addCleanup(securitytxt.forget)


def gpg_cli(home, *args, input_bytes=None):
    """Run the gpg command line in ``home`` (as a researcher would)."""
    return subprocess.run(["gpg", "--homedir", str(home), "--batch", "--yes", *args], input=input_bytes,
                          capture_output=True, timeout=60, check=False)


class ResearcherKeyring:
    """A researcher's own keyring, for gpg --verify / --encrypt from the outside."""

    def __enter__(self):
        self.home = tempfile.mkdtemp(prefix="disclosure-test-researcher-")
        Path(self.home).chmod(0o700)
        return self

    def __exit__(self, *exc):
        pgp.stop_agent(self.home)
        shutil.rmtree(self.home, ignore_errors=True)

    def run(self, *args, input_bytes=None):
        return gpg_cli(self.home, *args, input_bytes=input_bytes)


def researcher_key(keyring: ResearcherKeyring, uid="Ada Researcher <ada@researcher.example>", algo="future-default",
                   usage="default", expire="1y", faked_time=None) -> str:
    """Generate a key in the researcher's keyring (no passphrase); returns its fingerprint."""
    args = ["--passphrase", "", "--pinentry-mode", "loopback"]
    if faked_time:
        args += ["--faked-system-time", faked_time]
    result = keyring.run(*args, "--quick-gen-key", uid, algo, usage, expire)
    assert result.returncode == 0, result.stderr
    listing = keyring.run("--with-colons", "--list-keys", uid).stdout.decode()
    return [line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")][0]


def export_public(keyring: ResearcherKeyring, fingerprint: str) -> str:
    return keyring.run("--armor", "--export", fingerprint).stdout.decode()


def revoke(keyring: ResearcherKeyring, fingerprint: str) -> None:
    """Import the revocation certificate gpg made when the key was generated."""
    certificate = (Path(keyring.home) / "openpgp-revocs.d" / f"{fingerprint}.rev").read_text()
    certificate = certificate.replace(":-----BEGIN PGP PUBLIC KEY BLOCK-----", "-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert keyring.run("--import", input_bytes=certificate.encode()).returncode == 0
