"""The SHA-256 of each version's .tflite and card, filled from the files where they are readable.

A version whose files cannot be read here (registered by path from another
machine, or deleted since) keeps empty checksums; registering it again fills
them.
"""

import hashlib
from pathlib import Path

from django.conf import settings
from django.db import migrations, models


def file_sha256(path: Path) -> str | None:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


def fill_checksums(apps, schema_editor):
    ModelVersion = apps.get_model("classifier", "ModelVersion")
    for version in ModelVersion.objects.filter(sha256=""):
        tflite = Path(version.file)
        if not tflite.is_absolute():
            tflite = Path(settings.CLASSIFIER_MODELS_DIR) / tflite
        sha256, card_sha256 = file_sha256(tflite), file_sha256(tflite.with_suffix(".json"))
        # Both or neither: a version is checked as a whole.
        if sha256 and card_sha256:
            version.sha256, version.card_sha256 = sha256, card_sha256
            version.save(update_fields=["sha256", "card_sha256"])


class Migration(migrations.Migration):
    dependencies = [
        ("classifier", "0004_display_rendition_and_band"),
    ]

    operations = [
        migrations.AddField(
            model_name="modelversion",
            name="card_sha256",
            field=models.CharField(
                blank=True,
                default="",
                help_text="SHA-256 of the card (.json) file, hex",
                max_length=64,
            ),
        ),
        migrations.AddField(
            model_name="modelversion",
            name="sha256",
            field=models.CharField(
                blank=True, default="", help_text="SHA-256 of the .tflite file, hex", max_length=64
            ),
        ),
        migrations.RunPython(fill_checksums, migrations.RunPython.noop, elidable=True),
    ]
