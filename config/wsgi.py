import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

# Import the team key from TEAM_KEY_FILE (or refuse to start on a wrong one), then refuse to
# serve on an unsafe configuration (weak SECRET_KEY, http SITE_URL, no mailer, ...).
from disclosure.checks import prepare_team_key, refuse_unsafe_deployment  # noqa: E402

prepare_team_key()
refuse_unsafe_deployment()
