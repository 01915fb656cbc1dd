"""Train a candidate model on the training data plus the photos reviewers labelled.

python manage.py train_model            # the base data: CLASSIFIER_TRAINING_DATA

The candidate and the active model are scored on the same held-out photos
(the base validation split plus 30% of the corrections); the candidate is
registered as a new, inactive version with both sets of figures. It is never
activated here: read the comparison, then `manage.py activate_model VERSION`.
"""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from classifier import services
from classifier.ml.evaluate import HEADLINE


class Command(BaseCommand):
    help = "Train a candidate on the training data plus reviewed photos; register it, inactive."

    def add_arguments(self, parser):
        parser.add_argument(
            "--data",
            type=Path,
            default=settings.CLASSIFIER_TRAINING_DATA,
            help="the base training data (ImageFolder; default CLASSIFIER_TRAINING_DATA)",
        )
        parser.add_argument("--name", dest="name", default="", help="version name of the candidate")
        # The defaults are training's own (train.Config imports no TensorFlow).
        from classifier.ml.train import Config

        parser.add_argument(
            "--variants",
            type=int,
            default=Config.default("variants"),
            help="augmented copies per photo",
        )
        parser.add_argument("--head-epochs", type=int, default=Config.default("head_epochs"))
        parser.add_argument(
            "--finetune-epochs", type=int, default=Config.default("finetune_epochs")
        )
        parser.add_argument("--processes", type=int, default=None, help="feature workers")

    def handle(self, *args, data, name, variants, head_epochs, finetune_epochs, processes, **o):
        if not Path(data).is_dir():
            raise CommandError(f"{data} is not a directory of training images")
        from classifier.ml.train import valid_version

        if name and not valid_version(name):
            raise CommandError(f"{name!r}: use letters, digits, dot, dash and underscore")
        candidate = services.model_version_train(
            data=data,
            version=name,
            variants=variants,
            head_epochs=head_epochs,
            finetune_epochs=finetune_epochs,
            processes=processes,
            log=lambda line: self.stdout.write(str(line)),
        )
        self.stdout.write(comparison_table(candidate))
        self.stdout.write(
            f"{candidate.version} is registered, not active. To serve it:\n"
            f"  python manage.py activate_model {candidate.version}"
        )


def comparison_table(candidate) -> str:
    """The candidate's and the other model's figures on the same held-out photos."""
    mine, other = candidate.validation, candidate.comparison
    name = other.get("model_version", "(no active model)")
    rows = [f"{'held-out photos':24s} {candidate.version:>24s} {name:>24s}"]
    for key in HEADLINE:
        rows.append(f"{key:24s} {_fmt(mine.get(key)):>24s} {_fmt(other.get(key)):>24s}")
    sources = sorted(set(mine.get("by_source", {})) | set(other.get("by_source", {})))
    for source in sources:
        rows.append(
            f"{'accuracy on ' + source:24s} {_fmt(mine.get('by_source', {}).get(source)):>24s}"
            f" {_fmt(other.get('by_source', {}).get(source)):>24s}"
        )
    return "\n".join(rows)


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"
