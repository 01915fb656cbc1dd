#!/bin/sh
# The train service's default command: export the photos reviewers labelled
# in the admin, train on the training data (an ImageFolder tree mounted at
# /data) plus those photos, score the current model on the same validation
# photos, and write the new model to /app/models (./models on the host).
# Extra arguments go to `python -m classifier.ml train`, e.g. --epochs 8.
set -eu
data=${TRAIN_DATA_DIR:-/data}
reviewed=$(mktemp -d)
trap 'rm -rf "$reviewed"' EXIT
# No system checks: they want a current model, which the first training makes.
python manage.py export_reviewed --skip-checks --out "$reviewed"
if [ -f /app/models/CURRENT ]; then
    set -- --compare-with /app/models "$@"
fi
python -m classifier.ml train --data "$data" --extra "$reviewed" --out /app/models "$@"
