"""gunicorn settings for the Procfile's web process (``gunicorn -c config/gunicorn.py ...``).

gpg starts one gpg-agent per keyring on first use, and the agent outlives the processes
that used it: when gunicorn exits, stop the agent of the portal's keyring (GNUPG_HOME).
The queue worker does the same (``manage.py worker``)."""

import os


def on_exit(server):
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    try:
        from django.conf import settings

        from disclosure import pgp

        pgp.stop_agent(settings.GNUPG_HOME)
    except Exception as error:  # noqa: BLE001 - exiting anyway: say why the agent may be left running
        server.log.warning("Could not stop the keyring's gpg-agent: %s", error)
