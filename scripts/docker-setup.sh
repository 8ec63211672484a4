#!/bin/sh
# Docker quick start, step 1: generates the admin key for `docker compose` and writes it to .env
# beside docker-compose.yml (mode 0600), showing it this once. Run again: it keeps the key and says
# so without showing it. Needs only a POSIX shell (no Node): sh scripts/docker-setup.sh
set -eu
cd "$(dirname "$0")/.."
env_file=.env

if [ -f "$env_file" ] && grep -Eq '^ADMIN_API_KEY=tp_[A-Za-z0-9_-]{24,}$' "$env_file"; then
  chmod 600 "$env_file"
  echo "$env_file already holds ADMIN_API_KEY (not shown again; read it there). Nothing changed."
  exit 0
fi

# 24 random bytes, base64url without padding: tp_ and 32 characters, as the server generates keys.
key="tp_$(head -c 24 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
umask 077
tmp="$env_file.tmp.$$"
if [ -f "$env_file" ]; then
  # An empty or malformed ADMIN_API_KEY line is replaced; everything else is kept.
  grep -v '^ADMIN_API_KEY=' "$env_file" > "$tmp" || true
else
  : > "$tmp"
fi
printf 'ADMIN_API_KEY=%s\n' "$key" >> "$tmp"
chmod 600 "$tmp"
mv "$tmp" "$env_file"

cat <<TEXT
Generated the admin key and wrote it to $env_file (mode 0600). It is shown this once:

  $key

Next:
  docker compose up --build -d         # PostgreSQL, Redis and the server on http://localhost:4000
  docker compose run --rm seed         # example addons on a "Demo shop" site; prints a site key
  open http://localhost:4000/dashboard and paste the admin key (or the site key)
TEXT
