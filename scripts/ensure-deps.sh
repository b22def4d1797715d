#!/usr/bin/env bash
# Installs the Debian packages fleetts's tests and demo need, idempotently: packages already
# installed are skipped, and `apt-get update` runs only when something is missing.
# Usage: scripts/ensure-deps.sh [PACKAGE…]   (default: the packages the test suite needs)
set -euo pipefail

# etcd: the registry; iproute2/iptables: the dev cluster's namespaces; mariadb-server, galera-4 and
# rsync (Galera's state transfer): the MySQL cluster; vsftpd, libpam-pwdfile and openssl (password
# hashes): FTP with virtual users; cloud-init: `cloud-init schema` checks the cloud-config files.
DEFAULT_PACKAGES=(etcd-server etcd-client iproute2 iptables procps
  mariadb-server mariadb-client galera-4 rsync vsftpd libpam-pwdfile openssl cloud-init)
packages=("$@")
[ ${#packages[@]} -gt 0 ] || packages=("${DEFAULT_PACKAGES[@]}")

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "fleetts: these Debian packages are needed and missing: ${missing[*]}" >&2
  echo "fleetts: run as root, or install them with: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "fleetts: installing Debian packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
# Packages with a daemon (etcd, mariadb, vsftpd) must not start it: fleetts runs its own instances.
# policy-rc.d answering 101 is Debian's way to say so to invoke-rc.d during the install.
policy=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && own_policy=1
fi
status=0
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 || status=$?
[ $own_policy -eq 0 ] || rm -f "$policy"
[ $status -eq 0 ] || exit $status
# Debian's etcd-server package starts a system etcd on the default ports; fleetts runs its own.
if printf '%s\n' "${missing[@]}" | grep -qx etcd-server; then
  (systemctl disable --now etcd 2>/dev/null || service etcd stop 2>/dev/null || pkill -x etcd || true) >/dev/null 2>&1
fi
