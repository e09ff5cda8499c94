"""The team key from a secret (TEAM_KEY_FILE): imported into an empty GNUPG_HOME by whichever
process needs it first, once, safely when several start at once; a file that does not hold
the key TEAM_KEY_FINGERPRINT names stops start-up with the reason. Real gpg, real processes."""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from django.conf import settings
from django.test import SimpleTestCase, override_settings

from disclosure import pgp
from tests.base import fresh_env
from tests.pgp_keys import ResearcherKeyring

PASSPHRASE = "correct horse battery staple"
UID = "Example security team <security@security.example.com>"


def make_key(keyring: ResearcherKeyring, *, passphrase: str = PASSPHRASE) -> str:
    args = ["--passphrase", passphrase, "--pinentry-mode", "loopback"]
    assert keyring.run(*args, "--quick-gen-key", UID, "future-default", "default", "1y").returncode == 0
    listing = keyring.run("--with-colons", "--list-keys", UID).stdout.decode()
    return [line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")][0]


class KeyFileTestCase(SimpleTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.keyring = ResearcherKeyring().__enter__()
        cls.addClassCleanup(cls.keyring.__exit__, None, None, None)
        cls.fingerprint = make_key(cls.keyring)
        cls.folder = Path(tempfile.mkdtemp(prefix="disclosure-test-keyfile-"))
        cls.addClassCleanup(shutil.rmtree, cls.folder, ignore_errors=True)
        cls.secret_file = cls.folder / "team-key.asc"
        cls.secret_file.write_bytes(cls.keyring.run("--passphrase", PASSPHRASE, "--pinentry-mode", "loopback",
                                                    "--armor", "--export-secret-keys", cls.fingerprint).stdout)
        cls.public_file = cls.folder / "team-public.asc"
        cls.public_file.write_bytes(cls.keyring.run("--armor", "--export", cls.fingerprint).stdout)
        cls.passphrase_file = cls.folder / "passphrase"
        cls.passphrase_file.write_text(PASSPHRASE + "\n")

    def empty_home(self) -> Path:
        home = Path(tempfile.mkdtemp(prefix="disclosure-test-home-"))
        self.addCleanup(shutil.rmtree, home, ignore_errors=True)
        self.addCleanup(pgp.stop_agent, home)
        return home / "gnupg"  # not even created yet: a fresh host

    def using(self, home, key_file, fingerprint=None):
        pgp.forget()
        self.addCleanup(pgp.forget)
        return override_settings(GNUPG_HOME=home, TEAM_KEY_FILE=str(key_file), TEAM_KEY_PASSPHRASE=PASSPHRASE,
                                 TEAM_KEY_FINGERPRINT=self.fingerprint if fingerprint is None else fingerprint)


class ImportTests(KeyFileTestCase):
    def test_an_empty_keyring_gets_the_secret_key_on_first_use_and_decrypts(self):
        home = self.empty_home()
        with self.using(home, self.secret_file):
            key = pgp.team_key()
            self.assertEqual(key.fingerprint, self.fingerprint)
            self.assertTrue(key.can_decrypt and key.can_sign)
            sealed = pgp.encrypt_to_team(b"report text", armor=False)
            self.assertEqual(pgp.decrypt(sealed), b"report text")  # the passphrase-protected secret works

    def test_importing_again_changes_nothing(self):
        home = self.empty_home()
        with self.using(home, self.secret_file):
            self.assertEqual(pgp.import_team_key_file(), self.fingerprint)
            before = pgp.keyring._keyring_stamp(home)
            pgp.forget()  # a new process: it checks the keyring, and finds the key there
            self.assertEqual(pgp.import_team_key_file(), self.fingerprint)
            self.assertEqual(pgp.keyring._keyring_stamp(home), before)

    def test_a_public_key_file_gives_offline_key_mode(self):
        with self.using(self.empty_home(), self.public_file):
            key = pgp.team_key()
            self.assertEqual(key.fingerprint, self.fingerprint)
            self.assertFalse(key.can_decrypt)

    def test_a_file_without_the_configured_key_is_refused_with_the_reason(self):
        with self.using(self.empty_home(), self.secret_file, fingerprint="A" * 40):
            with self.assertRaisesRegex(pgp.PGPError, f"does not hold the key TEAM_KEY_FINGERPRINT names "
                                                      f"\\({'A' * 40}\\); it holds {self.fingerprint}"):
                pgp.team_key()

    def test_a_key_file_needs_the_fingerprint_pinned(self):
        with self.using(self.empty_home(), self.secret_file, fingerprint=""):
            with self.assertRaisesRegex(pgp.PGPError, "TEAM_KEY_FINGERPRINT is not"):
                pgp.import_team_key_file()

    def test_a_missing_or_garbage_file_is_refused(self):
        garbage = self.folder / "garbage.asc"
        garbage.write_text("not a key")
        for path, reason in ((self.folder / "missing.asc", "cannot be read"), (garbage, "holds no OpenPGP key")):
            with self.subTest(path=path.name), self.using(self.empty_home(), path):
                with self.assertRaisesRegex(pgp.PGPError, reason):
                    pgp.import_team_key_file()


class StartUpTests(KeyFileTestCase):
    """Real processes, as a platform starts them: each with an empty GNUPG_HOME."""

    def env(self, home, **extra):
        return fresh_env(str(home.parent), **{
            "DEBUG": "true", "GNUPG_HOME": str(home), "TEAM_KEY_FILE": str(self.secret_file),
            "TEAM_KEY_PASSPHRASE_FILE": str(self.passphrase_file), "TEAM_KEY_FINGERPRINT": self.fingerprint, **extra})

    def run_python(self, code, env):
        return subprocess.Popen([sys.executable, "-c", code], cwd=settings.BASE_DIR, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def test_processes_starting_at_once_on_a_fresh_keyring_all_get_the_key(self):
        home = self.empty_home()
        code = ("import django; django.setup(); import config.wsgi; from disclosure import pgp; "
                "key = pgp.team_key(); print(key.fingerprint, key.can_decrypt)")
        processes = [self.run_python(code, self.env(home)) for _ in range(6)]
        outputs = [process.communicate(timeout=120) for process in processes]
        for process, (out, err) in zip(processes, outputs, strict=True):
            self.assertEqual(process.returncode, 0, err[-2000:])
            self.assertEqual(out.split(), [self.fingerprint, "True"])
        listing = subprocess.run(["gpg", "--homedir", str(home), "--with-colons", "--list-secret-keys"],
                                 capture_output=True, text=True, check=True).stdout
        self.assertEqual([line for line in listing.splitlines() if line.startswith("fpr:")][0].split(":")[9],
                         self.fingerprint)

    def test_the_web_application_refuses_to_start_on_the_wrong_key(self):
        home = self.empty_home()
        process = self.run_python("import config.wsgi", self.env(home, TEAM_KEY_FINGERPRINT="B" * 40))
        _, err = process.communicate(timeout=120)
        self.assertNotEqual(process.returncode, 0)
        self.assertIn("ImproperlyConfigured: The portal refuses to start: TEAM_KEY_FILE", err)
        self.assertIn(f"does not hold the key TEAM_KEY_FINGERPRINT names ({'B' * 40})", err)

    def test_the_worker_refuses_to_start_on_the_wrong_key(self):
        home = self.empty_home()
        result = subprocess.run([sys.executable, "manage.py", "worker"], cwd=settings.BASE_DIR, capture_output=True,
                                text=True, timeout=120, env=self.env(home, TEAM_KEY_FINGERPRINT="C" * 40))
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("does not hold the key TEAM_KEY_FINGERPRINT names", result.stderr)

    def test_the_system_check_names_the_problem(self):
        home = self.empty_home()
        result = subprocess.run([sys.executable, "manage.py", "check"], cwd=settings.BASE_DIR, capture_output=True,
                                text=True, timeout=120, env=self.env(home, TEAM_KEY_FINGERPRINT="D" * 40))
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("disclosure.E010", result.stderr)
