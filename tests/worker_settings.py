"""Settings of a real queue worker started by tests/test_faults.py: the production settings
(read from the environment), with a mail server stand-in whose worker is killed after the
server accepted a message."""

import os

from config.settings import *  # noqa: F403

MAILERS = {"default": {"BACKEND": "tests.mailers.AcceptedThenKilled",
                       "OPTIONS": {"file_path": os.environ["MAIL_FILE_PATH"]}}}
