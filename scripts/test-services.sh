#!/usr/bin/env bash
# Make sure the servers the test suite talks to are installed and answering.
# PostgreSQL and MariaDB come with this project's machines; where one has stopped it is
# started (the same commands the machine uses at boot), and where one is missing it is
# installed from Debian's packages. Tests never skip for a missing server: they fail.
set -euo pipefail

log() { printf 'test-services: %s\n' "$*"; }

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

need_packages=()
command -v pg_ctlcluster >/dev/null || need_packages+=(postgresql)
command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || need_packages+=(mariadb-server)
# Mail servers: the tests start their own Dovecot and smtp-sink on free loopback ports from
# temporary configs; the packages' system instances are never used.
[ -x /usr/sbin/dovecot ] || need_packages+=(dovecot-imapd)
if ! [ -x /usr/sbin/smtp-sink ]; then
  # Postfix asks how to configure itself; "No configuration" installs it without questions.
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  need_packages+=(postfix)
fi
# The status page test drives Debian's Chromium through Playwright (never a downloaded browser).
[ -x /usr/bin/chromium ] || need_packages+=(chromium)
# The unit file's test runs systemd-analyze verify and security --offline=yes (no systemd as
# PID 1 needed); the package also brings the unit files the verify looks up.
command -v systemd-analyze >/dev/null || need_packages+=(systemd)
if [ ${#need_packages[@]} -gt 0 ]; then
  log "installing ${need_packages[*]}"
  apt_install "${need_packages[@]}"
fi

wait_for() {  # wait_for NAME COMMAND...: up to 30 s
  local name=$1; shift
  for _ in $(seq 1 60); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  log "$name did not start; see its log"; return 1
}

if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  log "starting PostgreSQL"
  for version in $(ls /etc/postgresql); do
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  done
  wait_for PostgreSQL pg_isready -h 127.0.0.1 -p 5432 -q
fi
# The tests connect as postgres over TCP without a password (trust), as on these machines.
if ! psql -h 127.0.0.1 -U postgres -d postgres -tAc 'select 1' >/dev/null 2>&1; then
  log "PostgreSQL does not let postgres in over 127.0.0.1 without a password; see docs/testing.md"
  exit 1
fi

if ! mariadb -h 127.0.0.1 -u root -e 'select 1' >/dev/null 2>&1; then
  log "starting MariaDB"
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql
  wait_for MariaDB mariadb -h 127.0.0.1 -u root -e 'select 1'
fi
log "PostgreSQL and MariaDB are answering"
