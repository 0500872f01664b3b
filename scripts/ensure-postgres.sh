#!/usr/bin/env bash
# Make sure the PostgreSQL the tests use answers. Under CI=true a database
# that cannot be reached is a failure: the suite must never quietly skip it.
set -u
url="${CREDO_TEST_POSTGRES_URL:-postgresql://postgres@127.0.0.1:5432/test}"
ready() { pg_isready -q -d "$url" 2>/dev/null || .venv/bin/python - "$url" <<'PY' 2>/dev/null
import sys, psycopg
psycopg.connect(sys.argv[1], connect_timeout=3).close()
PY
}
ready && exit 0
# A local cluster that stopped can be started again (Debian's wrapper).
if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
  for v in $(ls /etc/postgresql); do
    pg_ctlcluster --skip-systemctl-redirect "$v" main start 2>/dev/null || true
  done
  for _ in 1 2 3 4 5 6 7 8 9 10; do ready && exit 0; sleep 1; done
fi
if [ "${CI:-}" = "true" ]; then
  echo "PostgreSQL at $url is unreachable, and CI=true: failing rather than skipping." >&2
  exit 1
fi
echo "warning: PostgreSQL at $url is unreachable; its tests will be skipped (set CI=true to fail)." >&2
