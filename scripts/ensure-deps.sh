#!/usr/bin/env bash
# Installs the Debian packages fleetts's tests, demo and benchmarks need, idempotently: packages
# already installed are skipped, and `apt-get update` runs only when something is missing.
# Prints one line per group of packages; apt's and dpkg's output goes to a log file, shown in full
# only when a step fails.
#
# Usage: scripts/ensure-deps.sh [GROUP|PACKAGE…]
#   GROUP is one of the names below (default: every group, what the test suite needs);
#   anything else is taken as a Debian package name (a group of its own).
# Env:   FLEETTS_INSTALL_LOG  (default /var/log/fleetts-install.log)
set -euo pipefail

# etcd: the registry; iproute2/iptables/util-linux (nsenter, mount): the dev cluster's network
# namespaces; iputils-arping: the floating address's gratuitous ARP; web: the farm (ab: the load
# benchmarks); mysql: Galera and its state transfer (rsync); ftp: virtual users (pwdfile PAM,
# openssl password hashes); docker: the container runtime and the image builds (debootstrap);
# checks: the consumers the cloud-config files are verified with; browser: the dashboard's test
# (headless chromium, driven by puppeteer-core).
declare -A GROUPS_OF=(
  [etcd]="etcd-server etcd-client"
  [system]="iproute2 iptables util-linux procps curl iputils-arping"
  [web]="nginx apache2 apache2-utils"
  [mysql]="mariadb-server mariadb-client galera-4 rsync"
  [ftp]="vsftpd libpam-pwdfile openssl"
  [docker]="docker.io debootstrap"
  [checks]="cloud-init systemd"
  [browser]="chromium"
)
ORDER=(etcd system web mysql ftp docker checks browser)

log="${FLEETTS_INSTALL_LOG:-/var/log/fleetts-install.log}"
say() { printf 'fleetts: %s\n' "$*" >&2; }

wanted=("$@")
[ ${#wanted[@]} -gt 0 ] || wanted=("${ORDER[@]}")

# group name → its missing packages
names=()
declare -A missing_of=()
for w in "${wanted[@]}"; do
  pkgs="${GROUPS_OF[$w]:-$w}"
  miss=""
  for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || miss+="$p "
  done
  names+=("$w")
  missing_of[$w]="${miss% }"
done

any=0
for w in "${names[@]}"; do [ -z "${missing_of[$w]}" ] || any=1; done
[ $any -eq 1 ] || exit 0

if [ "$(id -u)" -ne 0 ]; then
  all=""
  for w in "${names[@]}"; do all+="${missing_of[$w]} "; done
  say "these Debian packages are needed and missing: ${all% }"
  say "run as root, or install them with: sudo apt-get install ${all% }"
  exit 1
fi

mkdir -p "$(dirname "$log")"
: >>"$log"
# Runs one step with its output appended to the log; on failure prints that step's output in full.
step() {
  local what="$1"
  shift
  local start
  start=$(wc -l <"$log")
  printf '\n### %s: %s\n' "$(date -u +%FT%TZ)" "$*" >>"$log"
  if ! "$@" >>"$log" 2>&1; then
    say "$what failed; its output (also in $log):"
    tail -n +"$((start + 1))" "$log" >&2
    return 1
  fi
}

export DEBIAN_FRONTEND=noninteractive
# Packages with a daemon (etcd, mariadb, vsftpd, nginx, apache2, docker) must not start it:
# fleetts runs its own instances. policy-rc.d answering 101 is Debian's way to say so to
# invoke-rc.d during the install.
policy=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && own_policy=1
fi
cleanup() { [ $own_policy -eq 0 ] || rm -f "$policy"; }
trap cleanup EXIT

say "installing Debian packages (log: $log)"
step "apt-get update" apt-get update
for w in "${names[@]}"; do
  miss="${missing_of[$w]}"
  [ -n "$miss" ] || continue
  t0=$SECONDS
  # shellcheck disable=SC2086 # a list of package names
  step "installing $w ($miss)" apt-get install -y --no-install-recommends $miss
  say "  $w: installed $miss ($((SECONDS - t0)) s)"
  # Debian's etcd-server package starts a system etcd on the default ports; fleetts runs its own.
  case " $miss " in
    *" etcd-server "*)
      (systemctl disable --now etcd || service etcd stop || pkill -x etcd || true) >>"$log" 2>&1
      ;;
  esac
done
