#!/usr/bin/env bash
# Make the ODBC path to MariaDB usable: unixODBC plus the MariaDB ODBC driver, registered
# with unixODBC under the name "MariaDB Unicode" (the name Debian's package uses), so that
#   mysql+pyodbc://USER@HOST:3306/?driver=MariaDB+Unicode
# works. Idempotent: installs only what is missing and writes the driver entry only when
# `odbcinst -q -d` does not list it already. Needs root (apt-get, /etc/odbcinst.ini).
set -euo pipefail

DRIVER_NAME="MariaDB Unicode"

log() { printf 'odbc-setup: %s\n' "$*"; }

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

need_packages=()
# unixodbc: odbcinst and libodbc.so.2, which pyodbc is linked against.
installed unixodbc || need_packages+=(unixodbc)
installed odbc-mariadb || need_packages+=(odbc-mariadb)
if [ ${#need_packages[@]} -gt 0 ]; then
  log "installing ${need_packages[*]}"
  apt_install "${need_packages[@]}"
fi

registered() { odbcinst -q -d 2>/dev/null | grep -qxF "[$DRIVER_NAME]"; }

if ! registered; then
  # Some releases of the package register the driver from its postinst, some do not: find
  # the library the package installed rather than guessing a multiarch path.
  lib=$(dpkg -L odbc-mariadb | grep -E '/libmaodbc\.so$' | head -n 1 || true)
  if [ -z "$lib" ] || [ ! -f "$lib" ]; then
    log "odbc-mariadb is installed but libmaodbc.so was not found in it"; exit 1
  fi
  template=$(mktemp)
  trap 'rm -f "$template"' EXIT
  printf '[%s]\nDescription=MariaDB Connector/ODBC (Unicode)\nDriver=%s\nUsageCount=1\n' \
    "$DRIVER_NAME" "$lib" >"$template"
  # odbcinst -i -d writes /etc/odbcinst.ini (wherever unixODBC keeps it) the way unixODBC
  # expects; -r keeps an existing entry's usage count right if it is run again.
  odbcinst -i -d -r -f "$template" >/dev/null
  log "registered ODBC driver [$DRIVER_NAME] -> $lib"
fi

registered || { log "ODBC driver [$DRIVER_NAME] is still not registered"; exit 1; }
log "ODBC driver [$DRIVER_NAME] is registered"
