"""Delete stored files that no upload points to: what a killed worker leaves behind.

An upload writes its photo, page-size copy and thumbnail first, then saves its
row (classifier.services.upload_create); when that fails the files are
removed again. A worker killed in between (out of memory, a lost machine,
`docker kill`) removes nothing, and its files would stay for good, in a bucket
or on disk. Files younger than --older-than (an hour by default) are kept:
they may belong to an upload whose row is still being saved.

    python manage.py sweep_storage                 # files over an hour old with no row
    python manage.py sweep_storage --dry-run       # only say what would go
    python manage.py sweep_storage --older-than 0  # everything unreferenced (no uploads running)
"""

from datetime import timedelta

from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand
from django.utils import timezone

from classifier.models import Upload

# Where upload_create stores its three files.
FOLDERS = ("photos", "display", "thumbnails")


def _listdir(folder: str) -> list[str]:
    try:
        return default_storage.listdir(folder)[1]
    except FileNotFoundError:  # on disk, before the first upload
        return []


def unreferenced(*, older_than: timedelta) -> list[str]:
    """Stored names in FOLDERS that no Upload names, last modified before older_than ago."""
    # Listed before the rows are read: a file whose row commits in between is
    # then referenced, and one whose row has not committed yet is young.
    names = [f"{folder}/{name}" for folder in FOLDERS for name in _listdir(folder)]
    referenced = set()
    for row in Upload.objects.values_list("file", "display", "thumbnail").iterator():
        referenced.update(row)
    cutoff = timezone.now() - older_than
    return [
        name
        for name in names
        if name not in referenced and default_storage.get_modified_time(name) <= cutoff
    ]


class Command(BaseCommand):
    help = "Delete photos and their copies that no upload row points to (left by a killed worker)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than",
            type=float,
            default=3600,
            metavar="SECONDS",
            help="keep files younger than this (default 3600)",
        )
        parser.add_argument("--dry-run", action="store_true", help="list, delete nothing")

    def handle(self, *args, older_than, dry_run, **options):
        names = unreferenced(older_than=timedelta(seconds=older_than))
        for name in names:
            self.stdout.write(f"{'would delete' if dry_run else 'deleted'} {name}")
            if not dry_run:
                default_storage.delete(name)
        files = "1 file" if len(names) == 1 else f"{len(names)} files"
        self.stdout.write(f"{files} with no upload {'found' if dry_run else 'deleted'}")
