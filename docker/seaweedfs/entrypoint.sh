#!/bin/sh
# One SeaweedFS server (master, volume, filer and the S3 gateway) whose S3
# gateway accepts one key pair, S3_ACCESS_KEY and S3_SECRET_KEY, with admin
# rights on its buckets (a bucket is made on the first write to it). Data in
# /data. Extra arguments go to `weed server`. Either key may come from a file
# instead (S3_ACCESS_KEY_FILE, S3_SECRET_KEY_FILE: a Docker secret).
set -eu
for name in S3_ACCESS_KEY S3_SECRET_KEY; do
    file=$(printenv "${name}_FILE" || true)
    [ -n "$file" ] || continue
    if [ -n "$(printenv "$name" || true)" ]; then
        echo "seaweedfs: set $name or ${name}_FILE, not both" >&2
        exit 1
    fi
    export "$name=$(cat "$file")"
done
: "${S3_ACCESS_KEY:?set S3_ACCESS_KEY}"
: "${S3_SECRET_KEY:?set S3_SECRET_KEY}"

# JSON strings: the keys are whatever the operator chose, so escape them.
json_string() { printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g'; }
umask 077
cat >/etc/seaweedfs/s3.json <<JSON
{"identities": [{"name": "usbills",
  "credentials": [{"accessKey": "$(json_string "$S3_ACCESS_KEY")",
                   "secretKey": "$(json_string "$S3_SECRET_KEY")"}],
  "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
JSON

# Other containers reach it by this host name; every server listens on all
# of the container's addresses, on the default ports (S3 on 8333).
# Volumes of 1 GB, as many as the disk holds (each bucket has volumes of its own).
exec weed server -ip="$(cat /etc/hostname)" -ip.bind=0.0.0.0 -dir=/data \
    -s3 -s3.config=/etc/seaweedfs/s3.json -s3.port.iceberg=0 -s3.port.lance=0 \
    -master.volumeSizeLimitMB=1024 -volume.max=0 -volume.preStopSeconds=0 "$@"
