"""Write every reviewed photo into an ImageFolder tree, the layout training reads.

python manage.py export_training_data corrections/
python manage.py train_model            # exports and trains in one go
"""

from pathlib import Path

from django.core.management.base import BaseCommand

from classifier import services


class Command(BaseCommand):
    help = "Write reviewed photos into OUT/<reviewed label>/, one file per distinct photo."

    def add_arguments(self, parser):
        parser.add_argument("out", type=Path, help="folder to write into (made if missing)")

    def handle(self, *args, out: Path, **options):
        report = services.training_data_export(out=out)
        for label, n in report["classes"].items():
            self.stdout.write(f"{label:12s} {n:6d}")
        for pk in report["missing"]:
            self.stderr.write(f"missing photo file for prediction {pk}")
        total = sum(report["classes"].values())
        self.stdout.write(
            f"{total} photos in {out}: {report['written']} written, "
            f"{report['unchanged']} already there"
        )
