#!/bin/sh
# The train service's default command: `manage.py train_model`, which exports
# the photos reviewers labelled, trains a candidate on the training data (an
# ImageFolder tree mounted at /data) plus those photos, scores it and the
# active model on the same held-out photos, and registers it, inactive, in
# /app/models (./models on the host, which the web service reads). Extra
# arguments go to train_model, e.g. --finetune-epochs 8. Then:
#   docker compose exec web python manage.py activate_model <version>
set -eu
# No system checks: they want a current model, which the first training makes.
exec python manage.py train_model --skip-checks --data "${TRAIN_DATA_DIR:-/data}" "$@"
