# Shared shell helpers for scripts/run and scripts/test. Sourced, not run.

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else
    echo "error: '$*' needs root; install it yourself or run as root." >&2; return 1; fi
}

apt_install() {
  # Install Debian packages once; `apt-get update` only when something is missing.
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null 2>&1 || { echo "error: please install ${missing[*]}" >&2; return 1; }
  echo "==> installing ${missing[*]} with apt-get"
  # Servers (nginx, redis-server) are started by the tests on 127.0.0.1, never as system services:
  # a policy-rc.d for the install tells the packages not to start theirs (Debian's policy-rc.d interface).
  local policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null && as_root chmod +x "$policy"
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ -z "$policy" ] || as_root rm -f "$policy"
}

ensure_venv() {
  # ensure_venv REQUIREMENTS_FILE: create .venv once, install when the pins changed.
  local reqs=$1 stamp=.venv/.installed-$(basename "$1")
  if [ ! -x .venv/bin/python ]; then
    echo "==> creating .venv"
    if ! python3 -m venv .venv 2>/dev/null; then
      rm -rf .venv
      apt_install python3-venv
      python3 -m venv .venv
    fi
  fi
  if [ ! -f "$stamp" ] || [ -n "$(find requirements*.txt -newer "$stamp" 2>/dev/null)" ]; then
    echo "==> installing $reqs"
    .venv/bin/python -m pip install -q --disable-pip-version-check -r "$reqs"
    touch "$stamp"
  fi
}

find_pg_bin() {
  local dir
  if command -v initdb >/dev/null 2>&1; then dirname "$(readlink -f "$(command -v initdb)")"; return; fi
  for dir in /usr/lib/postgresql/*/bin; do [ -x "$dir/initdb" ] && { echo "$dir"; return; }; done
  return 1
}

start_postgres() {
  # Start a throwaway PostgreSQL on 127.0.0.1 and export PG_URL; stop_postgres ends it.
  local bin
  bin=$(find_pg_bin) || { apt_install postgresql; bin=$(find_pg_bin); }
  PGTMP=$(mktemp -d /tmp/reckon-pg.XXXXXX)
  PGPORT_TEST=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  local run=()
  if [ "$(id -u)" = 0 ]; then
    # PostgreSQL refuses to run as root.
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    chown postgres "$PGTMP"
    run=(runuser -u postgres --)
  fi
  "${run[@]}" "$bin/initdb" -D "$PGTMP/data" -U postgres --auth=trust -E UTF8 >/dev/null
  "${run[@]}" "$bin/pg_ctl" -D "$PGTMP/data" -l "$PGTMP/server.log" -w \
    -o "-p $PGPORT_TEST -c listen_addresses=127.0.0.1 -k $PGTMP -c fsync=off -c max_connections=200" start >/dev/null
  PG_BIN=$bin
  PG_RUN=("${run[@]}")
  export PG_URL="postgres://postgres@127.0.0.1:$PGPORT_TEST/reckon"
  echo "==> PostgreSQL running on 127.0.0.1:$PGPORT_TEST"
}

stop_postgres() {
  [ -n "${PGTMP:-}" ] || return 0
  "${PG_RUN[@]}" "$PG_BIN/pg_ctl" -D "$PGTMP/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$PGTMP"
  PGTMP=
}
