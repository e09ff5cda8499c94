import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Development only: create an 'admin' superuser with a random password if none exists."

    def handle(self, *args, **options):
        if not settings.DEBUG:
            self.stderr.write("ensure_dev_admin only runs with DEBUG=true; use createsuperuser in production.")
            return
        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            self.stdout.write("Admin: log in with your superuser at /admin/ "
                              "(forgot the password? .venv/bin/python manage.py changepassword admin)")
            return
        password = secrets.token_urlsafe(12)
        User.objects.create_superuser("admin", "admin@localhost", password)
        self.stdout.write(self.style.SUCCESS(
            f"Created the development superuser 'admin' with password: {password}\n"
            f"Log in at {settings.SITE_URL}/admin/ (this password is shown only once)."))
