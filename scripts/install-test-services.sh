#!/usr/bin/env bash
# What the server tests need beyond Python packages: PostgreSQL's server binaries and Debian's
# Chromium. Installed with apt when we are root (as CI is); otherwise the tests that need them
# skip with a message saying how to enable them.
set -u
missing=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "not installing ${missing[*]} (needs root and apt-get): their tests will be skipped"
  exit 0
fi
echo "installing ${missing[*]} for the server tests"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
  || echo "could not install ${missing[*]}: their tests will be skipped"
# Debian starts a cluster on install; the tests run their own, so stop the packaged one.
command -v pg_ctlcluster >/dev/null 2>&1 && service postgresql stop >/dev/null 2>&1
exit 0
