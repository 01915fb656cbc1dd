#!/bin/sh
# Render /etc/nginx/templates/**/NAME.template to /etc/nginx/conf.d/**/NAME with
# envsubst, replacing only variables that are set in the environment (so
# nginx's own $variables pass through). Honours NGINX_ENVSUBST_TEMPLATE_DIR,
# NGINX_ENVSUBST_TEMPLATE_SUFFIX, NGINX_ENVSUBST_OUTPUT_DIR, NGINX_ENVSUBST_FILTER.
set -e

template_dir=${NGINX_ENVSUBST_TEMPLATE_DIR:-/etc/nginx/templates}
suffix=${NGINX_ENVSUBST_TEMPLATE_SUFFIX:-.template}
output_dir=${NGINX_ENVSUBST_OUTPUT_DIR:-/etc/nginx/conf.d}
filter=${NGINX_ENVSUBST_FILTER:-}

[ -d "$template_dir" ] || exit 0
if [ ! -w "$output_dir" ]; then
    echo "$0: ERROR: $template_dir exists, but $output_dir is not writable"
    exit 0
fi

names=$(env | sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)=.*/\1/p' | grep -E "${filter:-.}" || true)
shell_format=$(for name in $names; do printf '${%s} ' "$name"; done)

find "$template_dir" -follow -type f -name "*$suffix" -print | while read -r template; do
    relative=${template#"$template_dir/"}
    output="$output_dir/${relative%"$suffix"}"
    mkdir -p "$(dirname "$output")"
    [ -n "${NGINX_ENTRYPOINT_QUIET_LOGS:-}" ] || echo "$0: rendering $template to $output"
    envsubst "$shell_format" <"$template" >"$output"
done
