import secrets

from django.conf import settings
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_email
from django.db import transaction
from django.urls import reverse

ROLES = ("Lead", "Triager", "Auditor")


class Command(BaseCommand):
    help = ("Create a staff account in a role (a Lead by default): the first account of a new installation, "
            "or a colleague's. Prints a random password once; the new user enrols an authenticator app at "
            "their first login.")

    def add_arguments(self, parser):
        parser.add_argument("email", help="The staff member's email address; it is also their username.")
        parser.add_argument("--role", choices=ROLES, default="Lead",
                            help="Lead (everything, exports, legal holds, settings), Triager (works reports) or "
                                 "Auditor (reads only). Default: Lead.")

    def handle(self, *args, email, role, **options):
        email = email.strip()
        try:
            validate_email(email)
        except ValidationError:
            raise CommandError(f"{email!r} is not an email address.") from None
        User = get_user_model()
        if User.objects.filter(username__iexact=email).exists() or User.objects.filter(email__iexact=email).exists():
            raise CommandError(f"There is already an account for {email}; use manage.py changepassword to reset "
                               "its password.")
        try:
            group = Group.objects.get(name=role)
        except Group.DoesNotExist:
            raise CommandError(f"The {role} group does not exist yet: run manage.py migrate first.") from None
        password = secrets.token_urlsafe(18)
        with transaction.atomic():
            user = User.objects.create_user(email, email, is_staff=True)
            password_validation.validate_password(password, user)
            user.set_password(password)
            user.save()
            user.groups.add(group)
        admin = settings.SITE_URL + reverse("admin:index")
        two_factor = settings.SITE_URL + reverse("staff-2fa")
        self.stdout.write(self.style.SUCCESS(f"Created the {role} {email}."))
        self.stdout.write(
            f"Password (shown only this once): {password}\n"
            f"1. Log in at {admin} with {email} and this password.\n"
            f"2. You are then sent to {two_factor} to set up two-factor login: scan the QR code with an "
            "authenticator app (or type its key) and enter one code to confirm. Every later login asks for a "
            "code.\n"
            "3. Change the password from the admin's \"Change password\" link.")
