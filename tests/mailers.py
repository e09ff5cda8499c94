"""Stand-ins for the mail provider, which is outside our walls."""

import os
import signal
from smtplib import SMTPServerDisconnected

from django.core.mail.backends import filebased, locmem
from django.core.mail.backends.base import BaseEmailBackend


class ProviderDown(BaseEmailBackend):
    """A mail provider that refuses every message, as an outage would."""

    def send_messages(self, email_messages):
        raise SMTPServerDisconnected("Connection unexpectedly closed: provider down")


DOWN = {"default": {"BACKEND": "tests.mailers.ProviderDown"}}
WORKING = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}


class WorkerKilled(BaseException):
    """What a SIGKILL leaves a worker: no chance to record anything (not an ``Exception``)."""


class AcceptedThenDied(locmem.EmailBackend):
    """The mail provider accepts the message (it is in ``mail.outbox``), then the process
    sending it dies before it can record anything, in this process: the provider's reply
    never arrives."""

    def send_messages(self, email_messages):
        super().send_messages(email_messages)
        raise WorkerKilled("killed after the provider accepted the message")


ACCEPTED_THEN_DIED = {"default": {"BACKEND": "tests.mailers.AcceptedThenDied"}}


class AcceptedThenKilled(filebased.EmailBackend):
    """The mail server accepts the message (written to ``file_path``), then the worker
    process sending it is killed (SIGKILL) before it can record anything."""

    def send_messages(self, email_messages):
        sent = super().send_messages(email_messages)
        os.kill(os.getpid(), signal.SIGKILL)
        return sent
