#!/usr/bin/env bash
# The Debian 13 test lane (`make test-debian13`): R 4.5 + rpy2 3.6 + Python 3.13.
#
#   1. Build once, and cache outside the checkout, a Debian 13 (trixie) root with debootstrap,
#      then install R and the r-cran-* packages (requirements.py DEBIAN_PACKAGES) with apt-get
#      inside it. A stamp file written only after a complete build marks the root usable; a
#      half-built root (interrupted, failed apt-get) is finished or rebuilt on the next run.
#   2. Mount proc, dev (rbind) and sys in the root (multiprocessing, Dask and R need them);
#      an EXIT/INT/TERM trap unmounts them whatever happens.
#   3. Clone the committed HEAD of this checkout into the root (/src) and run `make test`
#      there (scripts/setup.sh picks rpy2>=3.6.7 for R 4.5). pip's download cache lives in the
#      root (/var/cache/pylme-pip), so later runs do not download again.
#
# Environment knobs:
#   PYLME_DEBIAN13_ROOT   where the root lives (default /var/cache/pylme-alliance/debian13)
#   PYLME_DEBIAN_MIRROR   Debian mirror (default http://deb.debian.org/debian)
#   PYLME_DEBIAN13_REBUILD=1   throw the cached root away and build it again
#   PYTEST_ARGS           passed on to `make test` inside the root
#   PYLME_DEBIAN13_CMD    run this command in /src instead of `make test` (e.g. "make demo")
# Needs root (chroot, mount) and a Debian-like host with apt-get (for debootstrap).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
CHECKOUT=$PWD
ROOT=${PYLME_DEBIAN13_ROOT:-/var/cache/pylme-alliance/debian13}
MIRROR=${PYLME_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=trixie
STAMP=$ROOT/.pylme-root-ready
# Bump when the list of packages installed in the root changes; a different stamp rebuilds.
ROOT_FORMAT=1

log() { printf 'debian13: %s\n' "$*" >&2; }
die() { printf 'debian13: ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot and mount); run it as root or with sudo."

# ---- mounts, and their clean-up on every exit -------------------------------------------------
MOUNTED=()
cleanup() {
  local i
  # unmount in reverse order; dev was bind-mounted recursively, so lazily detach its children too
  for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do
    umount -R "${MOUNTED[i]}" 2>/dev/null || umount -lR "${MOUNTED[i]}" 2>/dev/null ||
      log "could not unmount ${MOUNTED[i]}"
  done
  MOUNTED=()
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM

mount_in_root() {  # mount_in_root TARGET-SUBDIR MOUNT-ARGS...
  local target=$ROOT/$1; shift
  mountpoint -q "$target" && return 0  # left over from a run killed with SIGKILL
  mkdir -p "$target"
  mount "$@" "$target"
  MOUNTED+=("$target")
}

in_root() {  # run a shell command inside the root with a clean, predictable environment
  chroot "$ROOT" /usr/bin/env -i HOME=/root TERM="${TERM:-dumb}" LANG=C.UTF-8 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    DEBIAN_FRONTEND=noninteractive PIP_CACHE_DIR=/var/cache/pylme-pip \
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=180 \
    CI="${CI:-}" PYTEST_ARGS="${PYTEST_ARGS:-}" \
    /bin/bash -c "$1"
}

# The R packages the project needs, from its single list (Debian package names).
deb_packages() {
  python3 - "$CHECKOUT/src/pylme_alliance/requirements.py" <<'PY'
import runpy, sys
print(" ".join(runpy.run_path(sys.argv[1])["DEBIAN_PACKAGES"].values()))
PY
}
PKGS="r-base-core r-base-dev $(deb_packages) python3 python3-venv python3-dev git make gcc ca-certificates"
WANT_STAMP="format=$ROOT_FORMAT suite=$SUITE pkgs=$PKGS"

# ---- build (once) -----------------------------------------------------------------------------
if [ "${PYLME_DEBIAN13_REBUILD:-0}" = 1 ] || { [ -f "$STAMP" ] && [ "$(cat "$STAMP")" != "$WANT_STAMP" ]; }; then
  log "rebuilding the root at $ROOT"
  # never delete through a live mount
  for m in proc sys dev; do mountpoint -q "$ROOT/$m" && umount -lR "$ROOT/$m"; done
  rm -rf --one-file-system "$ROOT"
fi

if [ ! -f "$STAMP" ]; then
  t0=$SECONDS
  if ! command -v debootstrap >/dev/null 2>&1; then
    log "installing debootstrap with apt-get"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >/dev/null
  fi
  # A root whose debootstrap did not finish has no working apt-get inside: start it afresh.
  if [ -d "$ROOT" ] && ! [ -x "$ROOT/usr/bin/apt-get" ] || [ -d "$ROOT/debootstrap" ]; then
    log "removing a half-built root at $ROOT"
    for m in proc sys dev; do mountpoint -q "$ROOT/$m" && umount -lR "$ROOT/$m"; done
    rm -rf --one-file-system "$ROOT"
  fi
  if [ ! -x "$ROOT/usr/bin/apt-get" ]; then
    log "debootstrap --variant=minbase $SUITE $ROOT (a few minutes)"
    mkdir -p "$(dirname "$ROOT")"
    debootstrap --variant=minbase "$SUITE" "$ROOT" "$MIRROR" >"$(dirname "$ROOT")/debootstrap.log" 2>&1 ||
      die "debootstrap failed; see $(dirname "$ROOT")/debootstrap.log"
  fi
  cp /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
  mount_in_root proc -t proc proc
  mount_in_root sys --rbind /sys
  mount_in_root dev --rbind /dev
  log "apt-get install in the root: $PKGS"
  # R packages come from Debian's own archive only; --no-install-recommends keeps it small.
  in_root "apt-get update -q && apt-get install -y -q --no-install-recommends $PKGS && apt-get clean" \
    >"$(dirname "$ROOT")/apt.log" 2>&1 || die "apt-get in the root failed; see $(dirname "$ROOT")/apt.log"
  printf '%s' "$WANT_STAMP" >"$STAMP"
  log "root ready in $((SECONDS - t0)) s"
fi

# ---- run ---------------------------------------------------------------------------------------
cp /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
# pip in the root checks TLS with the root's own bundle (ca-certificates); if the host adds a
# site CA (a TLS-inspecting proxy), bring the host's bundle in so pip trusts the same servers.
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  mkdir -p "$ROOT/usr/local/share/pylme"
  cp /etc/ssl/certs/ca-certificates.crt "$ROOT/usr/local/share/pylme/host-ca.crt"
fi
mount_in_root proc -t proc proc
mount_in_root sys --rbind /sys
mount_in_root dev --rbind /dev

rm -rf "$ROOT/src"
# What is committed, not the working tree: the lane tests what CI would test.
git clone -q --no-hardlinks "$CHECKOUT" "$ROOT/src"
log "testing $(git -C "$ROOT/src" log -1 --format='%h %s' | cut -c1-80)"
# (single quotes: $PYTEST_ARGS is expanded, as one word, by the shell inside the root)
DEFAULT_CMD='make test PYTEST_ARGS="$PYTEST_ARGS"'
CMD=${PYLME_DEBIAN13_CMD:-$DEFAULT_CMD}
# The suite checks Ctrl-C handling: started from a background job (nohup, `cmd &`), SIGINT
# arrives ignored and stays ignored in every child, which a shell cannot undo. Python can:
# give the run the default disposition, as an interactive terminal would.
in_root "exec python3 -c 'import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); \
os.execv(\"/bin/bash\", [\"bash\", \"-c\", sys.argv[1]])' \
'export PIP_CERT=/usr/local/share/pylme/host-ca.crt; [ -f \$PIP_CERT ] || unset PIP_CERT; cd /src && $CMD'"
