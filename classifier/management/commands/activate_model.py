"""Switch the model every worker serves; rolling back is the same command.

python manage.py activate_model effl0-20261124
python manage.py activate_model --list

The version is loaded here first, from this machine's files or, with object
storage, fetched and checked, so it works on any replica.
"""

from django.core.management.base import BaseCommand, CommandError

from classifier import selectors, services
from classifier.ml.predictor import ModelError


class Command(BaseCommand):
    help = "Make VERSION the active model; running workers switch at their next upload."

    def add_arguments(self, parser):
        parser.add_argument("version", nargs="?", help="a registered version (see --list)")
        parser.add_argument("--list", action="store_true", help="list the versions and stop")

    def handle(self, *args, version=None, list=False, **options):
        services.model_version_sync()
        if list or not version:
            for v in selectors.model_version_list():
                accuracy = v.validation.get("accuracy")
                self.stdout.write(
                    f"{'*' if v.is_active else ' '} {v.version:32s} "
                    f"created {v.created:%Y-%m-%d %H:%M}  "
                    f"sha256 {v.sha256[:12] or '-':12s}  "
                    f"validation accuracy {accuracy if accuracy is not None else '-'}"
                )
            if not version and not list:
                raise CommandError("name the version to activate (listed above)")
            return
        found = selectors.model_version_get(version=version)
        if found is None:
            raise CommandError(f"no model version {version!r}; see activate_model --list")
        try:
            services.model_version_activate(version=found)
        except ModelError as exc:
            raise CommandError(f"{version} cannot be served, not activated: {exc}") from exc
        self.stdout.write(f"{version} is now active; workers switch at their next upload")
