"""Email to the team's address as an intake channel: three ways in, one path through.

- ``imap.py``: the poller (``fetch_mail``, the ``disclosure-mail`` schedule);
- ``webhooks.py``: mail providers' inbound webhooks (anymail's signal);
- ``management/commands/ingest_email.py``: a pipe from the MTA;
each ends in ``file.py``: ``receive`` then ``file``, which parses (``parse.py``), opens PGP
(``pgpmail.py``), classifies (``classify.py``) and files a message once. ``tags.py`` makes
and checks the Reply-To tags that thread replies back; ``models.py`` is the Inbound mail log.
"""
