"""Make the Reviewers group, and optionally put users in it.

python manage.py make_reviewers            # the group and its permissions only
python manage.py make_reviewers alice bob  # ... and alice and bob review (made staff)
"""

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from classifier import services


class Command(BaseCommand):
    help = (
        "Create or repair the Reviewers group (view and change predictions, view model "
        "versions) and add the named users to it as staff."
    )

    def add_arguments(self, parser):
        parser.add_argument("usernames", nargs="*", help="users to make reviewers")

    def handle(self, *args, usernames=(), **options):
        users = list(get_user_model().objects.filter(username__in=usernames))
        missing = sorted(set(usernames) - {u.username for u in users})
        if missing:
            raise CommandError(f"no such user: {', '.join(missing)}")
        try:
            group = services.reviewer_group_ensure(users=users)
        except ValidationError as exc:
            raise CommandError(exc.messages[0]) from None
        names = ", ".join(p.codename for p in group.permissions.order_by("codename"))
        self.stdout.write(f"group {group.name}: {names}")
        for user in users:
            self.stdout.write(f"{user.username} reviews")
