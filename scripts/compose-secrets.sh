#!/usr/bin/env bash
# Fills every empty required secret of a compose env file (default .env) with a fresh random value,
# in place; values already set are kept, so running it twice changes nothing the second time.
#   cp .env.example .env && scripts/compose-secrets.sh .env && docker compose up -d
# The required secrets are those docker-compose.yaml declares with ${NAME:?...}. AWS_ACCESSKEYID and
# AWS_SECRETACCESSKEY become the local SeaweedFS identity; for real Amazon S3 set an IAM user's keys
# instead. Needs only bash and coreutils. Prints the names it filled, never the values.
set -euo pipefail
cd "$(dirname "$0")/.."
env_file=${1:-.env}
[ -f "$env_file" ] || { echo "compose-secrets: $env_file not found; first: cp .env.example $env_file" >&2; exit 2; }
mapfile -t required < <(grep -oE '\$\{[A-Z0-9_]+:\?' docker-compose.yaml | sed -E 's/^\$\{//; s/:\?$//' | sort -u)
random_token() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }   # 48 hex digits: safe in URLs and JSON
fernet_key() { head -c 32 /dev/urandom | base64 | tr '+/' '-_'; }          # what Fernet.generate_key() makes
filled=()
for name in "${required[@]}"; do
  current=$(grep -E "^${name}=" "$env_file" | tail -n1 | cut -d= -f2- || true)
  [ -n "$current" ] && continue
  case "$name" in
    AIRFLOW_FERNET_KEY) value=$(fernet_key) ;;
    *) value=$(random_token) ;;
  esac
  if grep -qE "^${name}=" "$env_file"; then
    sed -i -E "s|^${name}=.*$|${name}=${value}|" "$env_file"
  else
    printf '%s=%s\n' "$name" "$value" >> "$env_file"
  fi
  filled+=("$name")
done
chmod 600 "$env_file"
if [ ${#filled[@]} -eq 0 ]; then
  echo "compose-secrets: every required secret of $env_file is set"
else
  echo "compose-secrets: filled ${filled[*]} in $env_file (mode 600; keep it out of git)"
fi
