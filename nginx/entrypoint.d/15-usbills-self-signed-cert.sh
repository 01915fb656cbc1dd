#!/bin/sh
# Make a self-signed certificate at first start when none was mounted, so the
# site comes up on HTTPS at once. Put a real fullchain.pem and privkey.pem in
# the certificate volume and reload nginx to replace it (docs/deploy.md).
set -eu

dir=${NGINX_CERT_DIR:-/etc/nginx/certs}
name=${NGINX_SERVER_NAME:-localhost}
# The first name of server_name, unless it is the catch-all "_".
cn=${name%% *}
case "$cn" in
    "" | _ | "*"*) cn=localhost ;;
esac

if [ -s "$dir/fullchain.pem" ] && [ -s "$dir/privkey.pem" ]; then
    exit 0
fi

mkdir -p "$dir"
echo "$0: no certificate in $dir: making a self-signed one for $cn"
umask 077
openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 825 \
    -subj "/CN=$cn" \
    -addext "subjectAltName=DNS:$cn,DNS:localhost,IP:127.0.0.1" \
    -keyout "$dir/privkey.pem.new" -out "$dir/fullchain.pem.new" 2>/dev/null
chmod 644 "$dir/fullchain.pem.new"
mv "$dir/privkey.pem.new" "$dir/privkey.pem"
mv "$dir/fullchain.pem.new" "$dir/fullchain.pem"
