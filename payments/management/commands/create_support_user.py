import getpass
import os
import sys

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_email
from django.db import transaction

from config.staff_auth import enrol, enrolment_text
from payments.resolution import SUPPORT_GROUP


class Command(BaseCommand):
    help = (f'Create a staff user in the "{SUPPORT_GROUP}" group: the support console (/admin/) with just the '
            "permissions to look into payments and resolve them, no more. The password is asked for twice, or "
            "read from an environment variable with --password-from-env. It prints the second factor to give "
            "the person: an authenticator-app key and backup codes.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--email", required=True, help="the person's e-mail address")
        parser.add_argument("--password-from-env", metavar="VAR",
                            help="read the password from this environment variable instead of asking")

    def handle(self, *args, username: str, email: str, password_from_env: str | None, **options) -> None:
        User = get_user_model()
        username = username.strip()
        if not username:
            raise CommandError("Give a username.")
        try:
            validate_email(email)
        except ValidationError:
            raise CommandError(f"{email!r} is not a valid e-mail address.") from None
        password = self._password_from_env(password_from_env) if password_from_env else None
        if User.objects.filter(**{User.USERNAME_FIELD: username}).exists():
            raise CommandError(f"A user named {username!r} already exists; choose another name.")
        group = Group.objects.filter(name=SUPPORT_GROUP).first()
        if group is None:
            raise CommandError(f'The "{SUPPORT_GROUP}" group does not exist: run "manage.py migrate" first.')
        user = User(**{User.USERNAME_FIELD: username}, email=email, is_staff=True)
        if password is None:
            password = self._password_from_terminal()
        try:
            validate_password(password, user)
        except ValidationError as exc:
            raise CommandError("Password refused: " + " ".join(exc.messages)) from None
        user.set_password(password)
        with transaction.atomic():
            user.save()
            user.groups.add(group)
            enrolment = enrol(user)
        self.stdout.write(f'Created staff user {username!r} in the "{SUPPORT_GROUP}" group; they sign in at /admin/ '
                          "with their password and a code.")
        self.stdout.write(enrolment_text(enrolment))

    @staticmethod
    def _password_from_env(variable: str) -> str:
        password = os.environ.get(variable)
        if not password:
            raise CommandError(f"The environment variable {variable} is not set or empty.")
        return password

    @staticmethod
    def _password_from_terminal() -> str:
        if not sys.stdin.isatty():
            raise CommandError("No terminal to ask for the password: pass --password-from-env VAR.")
        password = getpass.getpass("Password: ")
        if password != getpass.getpass("Password (again): "):
            raise CommandError("The two passwords differ; nothing was created.")
        return password
