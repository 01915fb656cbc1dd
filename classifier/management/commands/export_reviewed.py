"""Old name of export_training_data, kept so that existing scripts keep working."""

from pathlib import Path

from django.core.management.base import CommandError

from .export_training_data import Command as ExportTrainingData


class Command(ExportTrainingData):
    help = "Alias of export_training_data (the folder may also be given as --out)."

    def add_arguments(self, parser):
        parser.add_argument("out", type=Path, nargs="?", help="folder to write into")
        parser.add_argument("--out", dest="out_option", type=Path, help="same as OUT")

    def handle(self, *args, out=None, out_option=None, **options):
        out = out or out_option
        if out is None:
            raise CommandError("give the folder to write into: export_training_data OUT")
        return super().handle(*args, out=out, **options)
