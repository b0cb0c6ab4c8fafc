#!/bin/bash
# The official image's 20-envsubst-on-templates.sh: render /etc/nginx/templates/*.template into conf.d,
# substituting only variables defined in the environment (nginx's own $variables stay).
set -euo pipefail
dir=${NGINX_ENVSUBST_TEMPLATE_DIR:-/etc/nginx/templates}
suffix=${NGINX_ENVSUBST_TEMPLATE_SUFFIX:-.template}
out=${NGINX_ENVSUBST_OUTPUT_DIR:-/etc/nginx/conf.d}
defined=$(printf '${%s} ' $(env | cut -d= -f1))
mkdir -p "$out"
for template in "$dir"/*"$suffix"; do
  [ -f "$template" ] || continue
  name=$(basename "$template" "$suffix")
  envsubst "$defined" < "$template" > "$out/$name"
  echo "rendered $template -> $out/$name"
done
exec "$@"
