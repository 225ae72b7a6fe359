from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from config.staff_auth import enrol, enrolment_text, is_enrolled


class Command(BaseCommand):
    help = ("Give a staff user their second factor for the support console: an authenticator-app key and "
            "single-use backup codes, printed once. --reset replaces a lost one (the old key and codes stop "
            "working at once).")

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--reset", action="store_true",
                            help="replace an existing second factor (a lost phone, used-up backup codes)")

    def handle(self, *args, username: str, reset: bool, **options) -> None:
        User = get_user_model()
        user = User.objects.filter(**{User.USERNAME_FIELD: username}).first()
        if user is None:
            raise CommandError(f"There is no user named {username!r}.")
        if not user.is_staff:
            raise CommandError(f"{username!r} is not staff: only staff sign in to the console.")
        if is_enrolled(user) and not reset:
            raise CommandError(f"{username!r} already has a second factor. To replace it (the old one stops "
                               f"working), run: manage.py enrol_otp {username} --reset")
        self.stdout.write(enrolment_text(enrol(user, reset=reset)))
