"""The IMAP poller: each message in the mailbox is filed, then moved to INBOUND_DONE_FOLDER.

``INBOUND_IMAP_URL`` names the mailbox (``imaps://user@host:993/INBOX``); the password
comes from ``INBOUND_IMAP_PASSWORD`` (or ``_FILE``), or an OAuth bearer token from
``INBOUND_IMAP_OAUTH2_TOKEN_FILE`` (XOAUTH2, read at every poll so an external renewer
can replace it). IMAPClient does the protocol. A message is moved only once what it
created is committed, and the arrival time is its INTERNALDATE. If the poller dies between
the commit and the move, the next poll finds the message's row done and just moves it.
"""

import logging
import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone
from imapclient import IMAPClient

from disclosure.inbound import file
from disclosure.inbound.models import InboundMail

log = logging.getLogger(__name__)
LAST_POLL_KEY = "disclosure:inbound:last-poll"
LAST_ERROR_KEY = "disclosure:inbound:last-error"
BATCH = 100  # messages per poll; the rest wait a minute


@dataclass(frozen=True)
class Mailbox:
    host: str
    port: int
    tls: bool
    user: str
    folder: str


def mailbox() -> Mailbox | None:
    """The configured mailbox, or None when IMAP polling is off."""
    url = settings.INBOUND_IMAP_URL
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("imaps", "imap") or not parts.hostname or not parts.username:
        raise ImproperlyConfigured("INBOUND_IMAP_URL must look like imaps://user@host:993/INBOX")
    folder = unquote(parts.path.lstrip("/")) or "INBOX"
    return Mailbox(parts.hostname, parts.port or (993 if parts.scheme == "imaps" else 143), parts.scheme == "imaps",
                   unquote(parts.username), folder)


def _login(client: IMAPClient, box: Mailbox) -> None:
    token_file = settings.INBOUND_IMAP_OAUTH2_TOKEN_FILE
    if token_file:
        client.oauth2_login(box.user, Path(token_file).read_text(encoding="utf-8").strip())
    else:
        client.login(box.user, settings.INBOUND_IMAP_PASSWORD)


def poll(now=None, *, limit: int = BATCH) -> dict:
    """One pass over the mailbox. Returns counts; a failure is logged and remembered for
    /healthz (it does not raise: the next pass a minute later tries again)."""
    now = now or timezone.now()
    box = mailbox()
    if box is None:
        return {"configured": False}
    try:
        context = ssl.create_default_context() if box.tls else None
        with IMAPClient(box.host, port=box.port, ssl=box.tls, ssl_context=context, timeout=60) as client:
            client.normalise_times = False  # INTERNALDATE with its time zone
            _login(client, box)
            result = _poll(client, box, limit)
    except Exception as exc:  # noqa: BLE001 - reported on /healthz and in the log
        log.exception("Polling %s failed", box.host)
        cache.set(LAST_ERROR_KEY, {"at": now.isoformat(), "error": f"{type(exc).__name__}: {exc}"[:500]}, None)
        return {"configured": True, "error": f"{type(exc).__name__}: {exc}"}
    cache.set(LAST_POLL_KEY, timezone.now().isoformat(), None)
    return {"configured": True, **result}


def _poll(client: IMAPClient, box: Mailbox, limit: int) -> dict:
    done_folder = settings.INBOUND_DONE_FOLDER
    ensure_folder(client, done_folder)
    client.select_folder(box.folder)
    counts = {"filed": 0, "moved": 0, "kept": 0}
    for uid in client.search(["NOT", "DELETED"])[:limit]:
        fetched = client.fetch([uid], ["INTERNALDATE", "BODY.PEEK[]"]).get(uid)
        if not fetched or b"BODY[]" not in fetched:
            continue  # moved by another poller meanwhile
        arrived = fetched.get(b"INTERNALDATE") or timezone.now()
        if timezone.is_naive(arrived):
            arrived = timezone.make_aware(arrived, timezone.get_default_timezone())
        row = file.take(fetched[b"BODY[]"], arrived_at=arrived, source=InboundMail.Source.IMAP)
        counts["filed"] += row.state == InboundMail.State.DONE
        if row.state == InboundMail.State.PENDING:
            counts["kept"] += 1  # filing failed: recorded on the row, tried again next poll
            continue
        try:
            _move(client, uid, done_folder)
            counts["moved"] += 1
        except Exception:  # noqa: BLE001 - another poller moved it first; the next pass will see
            log.warning("Moving message %s to %s failed", uid, done_folder, exc_info=True)
    return counts


def ensure_folder(client: IMAPClient, folder: str) -> None:
    """Create ``folder`` unless it exists. Created first and checked after a refusal (not the
    other way round), so two pollers racing to create it on a first run both carry on."""
    try:
        client.create_folder(folder)
    except IMAPClient.Error:
        if not client.folder_exists(folder):
            raise


def _move(client: IMAPClient, uid: int, folder: str) -> None:
    if client.has_capability("MOVE"):
        client.move([uid], folder)
        return
    client.copy([uid], folder)
    client.add_flags([uid], [b"\\Deleted"])
    if client.has_capability("UIDPLUS"):
        client.uid_expunge([uid])
    else:
        client.expunge()


def health(now) -> dict | None:
    """For /healthz: seconds since the last successful poll and the last error, when IMAP is on."""
    from datetime import datetime

    if not settings.INBOUND_IMAP_URL:
        return None
    last = cache.get(LAST_POLL_KEY)
    error = cache.get(LAST_ERROR_KEY)
    return {"last_poll_seconds_ago": int((now - datetime.fromisoformat(last)).total_seconds()) if last else None,
            "last_error": error}
