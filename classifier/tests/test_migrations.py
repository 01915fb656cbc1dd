import importlib

import pytest
from django.core.management import call_command
from django.db import migrations


@pytest.mark.django_db
def test_models_and_migrations_agree():
    # Raises SystemExit(1) when a model change has no migration.
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


def test_the_custom_user_model_is_in_the_first_migration():
    initial = importlib.import_module("classifier.migrations.0001_initial").Migration
    created = [op.name for op in initial.operations if isinstance(op, migrations.CreateModel)]
    assert created[0] == "User"
    assert initial.initial is True
