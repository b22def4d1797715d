#!/usr/bin/env bash
# Builds fleetts's container images locally, since there is no registry to pull from:
#   fleetts/base:bookworm   Debian bookworm (debootstrap --variant=minbase), `docker import`ed
#   fleetts/apache:latest   images/apache (FROM the base): Apache on :8080 in the foreground
#   fleetts/nginx:latest    images/nginx  (FROM the base): nginx in the foreground
# Cached: each image carries a label `fleetts.build-hash` (a hash of its definition and of its
# parent's image id); an image whose label matches is not rebuilt, so a second run takes seconds.
# The debootstrap rootfs is kept as a tarball in the cache dir, so a removed base is re-imported
# without downloading again.
#
# Usage: scripts/build-images.sh [--force] [IMAGE…]     IMAGE: base apache nginx, or any directory
#        name under images/ (default: base, then every directory under images/). Images other
#        than base need base.
# Env:   FLEETTS_IMAGE_CACHE  (default /var/cache/fleetts/images)
#        FLEETTS_DEBIAN_MIRROR (default http://deb.debian.org/debian)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
cache="${FLEETTS_IMAGE_CACHE:-/var/cache/fleetts/images}"
mirror="${FLEETTS_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
suite=bookworm
base_ref="fleetts/base:$suite"
export PATH="/usr/bin:/usr/sbin:$PATH"

force=0
targets=()
for a in "$@"; do
  case "$a" in
    --force) force=1 ;;
    -h | --help) sed -n '2,/^set /{/^#/p}' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) targets+=("$a") ;;
  esac
done
if [ ${#targets[@]} -eq 0 ]; then
  targets=(base)
  for d in "$root"/images/*/; do targets+=("$(basename "$d")"); done
fi

say() { printf 'build-images: %s\n' "$*" >&2; }
t0=$SECONDS

bash "$here/ensure-docker.sh"

label_of() { docker image inspect -f '{{index .Config.Labels "fleetts.build-hash"}}' "$1" 2>/dev/null || true; }
image_id() { docker image inspect -f '{{.Id}}' "$1" 2>/dev/null || true; }
size_of() { docker image inspect -f '{{.Size}}' "$1" | awk '{printf "%.1f MB", $1/1e6}'; }

# The base's definition is this recipe: suite, variant, mirror and the cleanup below (bump the
# version on any change to it).
base_hash="$(printf 'base-v2 %s minbase %s' "$suite" "$mirror" | sha256sum | cut -c1-16)"

build_base() {
  if [ $force -eq 0 ] && [ "$(label_of "$base_ref")" = "$base_hash" ]; then
    say "$base_ref is up to date ($(size_of "$base_ref"))"
    return
  fi
  local tarball="$cache/base-$suite-$base_hash.tar"
  if [ $force -eq 1 ] || [ ! -s "$tarball" ]; then
    [ "$(id -u)" -eq 0 ] || { say "debootstrap needs root"; exit 1; }
    mkdir -p "$cache"
    local rootfs="$cache/rootfs-$suite.tmp"
    rm -rf "$rootfs"
    say "debootstrap --variant=minbase $suite from $mirror (a few minutes, once)…"
    debootstrap --variant=minbase "$suite" "$rootfs" "$mirror" >"$cache/debootstrap.log" 2>&1 || {
      say "debootstrap failed; last lines of $cache/debootstrap.log:"
      tail -n 20 "$cache/debootstrap.log" >&2
      exit 1
    }
    # Apt sources for builds FROM the base; lists and caches dropped to keep the image small.
    cat >"$rootfs/etc/apt/sources.list" <<SOURCES
deb $mirror $suite main
deb $mirror $suite-updates main
deb ${mirror%/debian}/debian-security $suite-security main
SOURCES
    printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
      >"$rootfs/etc/apt/apt.conf.d/90fleetts-no-recommends"
    # Documentation, manuals and translations are dropped now and excluded from later installs
    # (as Docker's debian:slim images do), which saves about 45 MB; copyrights stay.
    cat >"$rootfs/etc/dpkg/dpkg.cfg.d/90fleetts-slim" <<'SLIM'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
SLIM
    find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
    find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
    find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
    rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/groff/* \
      "$rootfs"/usr/share/lintian/* "$rootfs"/var/cache/debconf/*-old
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
      "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/log/*.log "$rootfs"/tmp/*
    : >"$rootfs/etc/hostname"
    : >"$rootfs/etc/resolv.conf"
    find "$cache" -maxdepth 1 -name "base-$suite-*.tar" -delete # older recipes' rootfs
    say "packing rootfs into $tarball"
    tar --numeric-owner -C "$rootfs" -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    rm -rf "$rootfs"
  else
    say "re-using the debootstrap rootfs in $tarball"
  fi
  say "docker import → $base_ref"
  docker import \
    --change "LABEL fleetts.build-hash=$base_hash" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' \
    -m "fleetts base: debootstrap --variant=minbase $suite" \
    "$tarball" "$base_ref" >/dev/null
  say "$base_ref built ($(size_of "$base_ref"))"
}

# A farm image's hash covers every file under images/<name>/ (names and contents) and the id of
# the base it is built FROM, so a rebuilt base rebuilds its children.
build_dir_image() {
  local name="$1" dir="$root/images/$1" ref="fleetts/$1:latest"
  [ -f "$dir/Dockerfile" ] || { say "no Dockerfile in $dir"; exit 1; }
  local base_id
  base_id="$(image_id "$base_ref")"
  [ -n "$base_id" ] || { say "$base_ref is missing; build it first: $0 base"; exit 1; }
  local hash
  hash="$( (cd "$dir" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum; echo "$base_id") |
    sha256sum | cut -c1-16)"
  if [ $force -eq 0 ] && [ "$(label_of "$ref")" = "$hash" ]; then
    say "$ref is up to date ($(size_of "$ref"))"
    return
  fi
  say "docker build $ref from images/$name…"
  # Host networking: the build's apt reaches the mirror the same way the host does.
  if ! docker build --network host --label "fleetts.build-hash=$hash" -t "$ref" "$dir" \
    >"$cache/build-$name.log" 2>&1; then
    say "docker build of $ref failed; last lines of $cache/build-$name.log:"
    tail -n 30 "$cache/build-$name.log" >&2
    exit 1
  fi
  say "$ref built ($(size_of "$ref"))"
}

mkdir -p "$cache"
for t in "${targets[@]}"; do
  case "$t" in
    base) build_base ;;
    *) build_dir_image "$t" ;;
  esac
done
docker image prune -f --filter label=fleetts.build-hash >/dev/null 2>&1 || true
say "done in $((SECONDS - t0))s"
