import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

# Refuse to serve on an unsafe configuration (weak SECRET_KEY, http SITE_URL, no mailer, ...).
from disclosure.checks import refuse_unsafe_deployment  # noqa: E402

refuse_unsafe_deployment()
