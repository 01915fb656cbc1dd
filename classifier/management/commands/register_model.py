"""Register a model trained elsewhere (e.g. by `make train`) as a new, inactive version.

python manage.py register_model models/effl0-20261201.tflite   # its .json card beside it
python manage.py register_model path/to/models/                  # the version its CURRENT names

The card's "version" names the version; the row keeps the SHA-256 of the
.tflite and the card. With object storage (DJANGO_S3_BUCKET) both files are
published to it, under models/<version>/, so that every web process can fetch
them; without it, the files stay where they are and must stay readable there.
Running it again publishes what is missing and changes nothing else.
"""

from django.core.management.base import BaseCommand, CommandError

from classifier import services
from classifier.ml.predictor import ModelError


class Command(BaseCommand):
    help = "Register a .tflite (with its .json card beside it) as an inactive model version."

    def add_arguments(self, parser):
        parser.add_argument("path", help="a .tflite file, or a models directory (its CURRENT)")

    def handle(self, *args, path, **options):
        try:
            version = services.model_version_register(model_path=path, publish=False)
        except ModelError as exc:
            raise CommandError(f"not registered: {exc}") from exc
        try:
            written = services.model_version_publish(version=version)
        except (ModelError, OSError) as exc:
            raise CommandError(
                f"{version.version} is registered but not in the object store: {exc}\n"
                "Other machines cannot serve it until it is: run this command again."
            ) from exc
        state = "active" if version.is_active else "not active"
        self.stdout.write(
            f"{version.version} is registered (sha256 {version.sha256[:12]}), {state}"
        )
        if written is None:
            path = services.model_version_path(version)
            self.stdout.write(f"no object storage: it is served from {path}")
        elif written:
            self.stdout.write("published to the object store: " + ", ".join(written))
        else:
            self.stdout.write("already in the object store")
        if not version.is_active:
            self.stdout.write(f"To serve it:\n  python manage.py activate_model {version.version}")
