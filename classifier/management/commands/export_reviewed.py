"""Copy every reviewed photo into an ImageFolder tree, the training data layout.

python manage.py export_reviewed --out reviewed/
python -m classifier.ml train --data reviewed/ ...
"""

from pathlib import Path

from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand

from classifier import selectors


class Command(BaseCommand):
    help = "Copy reviewed photos into OUT/<label>/<name>, one folder per class."

    def add_arguments(self, parser):
        parser.add_argument("--out", required=True, type=Path, help="folder to write into")

    def handle(self, *args, out: Path, **options):
        written = skipped = 0
        for prediction in selectors.prediction_list_labelled():
            name = prediction.upload.file.name
            target = out / prediction.reviewed_label / Path(name).name
            if target.exists():
                skipped += 1
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with default_storage.open(name, "rb") as src:
                    target.write_bytes(src.read())
            except FileNotFoundError:
                self.stderr.write(f"missing file for prediction {prediction.pk}: {name}")
                continue
            written += 1
        self.stdout.write(f"wrote {written} photos to {out} ({skipped} already there)")
