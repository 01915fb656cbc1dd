#!/bin/sh
# The train service's default command: add the photos reviewers labelled in
# the admin to the training data (an ImageFolder tree mounted at /data), train,
# and write the new model to /app/models (./models on the host). Extra
# arguments go to `python -m classifier.ml train`, e.g. --epochs 8.
set -eu
data=${TRAIN_DATA_DIR:-/data}
# No system checks: they want a current model, which the first training makes.
python manage.py export_reviewed --skip-checks --out "$data"
exec python -m classifier.ml train --data "$data" --out /app/models "$@"
