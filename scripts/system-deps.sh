#!/usr/bin/env bash
# Debian packages that pip cannot install: gcc for the compiled look-up, Debian's Chromium
# for the Playwright browser tests (never `playwright install`: no downloads).
set -eu
missing=()
for pkg in "$@"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
