#!/usr/bin/env bash
# Set up everything `make test` and `make demo` need, idempotently:
#   1. R and the R packages listed in src/pylme_alliance/requirements.py
#      - already there (Rscript + every package)  -> use them
#      - else conda/mamba on PATH                   -> env ./.conda-env from environment.yml
#      - else apt-get usable (root or sudo -n)      -> Debian r-base-core r-base-dev r-cran-*
#      - else stop and say exactly what to install
#   2. .venv (python3 -m venv), the package editable with its test extra,
#      and the rpy2 that fits this R (requirements.rpy2_requirement()).
# A stamp in .venv keyed on pyproject.toml, requirements.py, this script, the R version and
# the base Python makes a second run a no-op (a changed pyproject reinstalls).
# Environment knobs: PYTHON (base interpreter, default python3), PYLME_CONDA_ENV (conda env
# prefix, default ./.conda-env), PYLME_FORCE_SETUP=1 (ignore the stamp).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
PYTHON=${PYTHON:-python3}
VENV=$ROOT/.venv
CONDA_ENV=${PYLME_CONDA_ENV:-$ROOT/.conda-env}
REQ=src/pylme_alliance/requirements.py
STAMP=$VENV/.setup-stamp
VENV_FLAGS=()

log() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: ERROR: %s\n' "$*" >&2; exit 1; }

command -v "$PYTHON" >/dev/null 2>&1 ||
  die "no '$PYTHON' on PATH. Install Python >= 3.11 (Debian 12: apt-get install python3 python3-venv python3-dev)."

# Read the single source of truth for R needs (requirements.py) without importing the package.
req() {  # req PYTHON-EXPRESSION-IN-ns [ARGS...]
  local expr=$1; shift
  "$PYTHON" - "$ROOT/$REQ" "$expr" "$@" <<'PY'
import runpy, sys
ns = runpy.run_path(sys.argv[1])
args = sys.argv[3:]
print(eval(sys.argv[2], {"ns": ns, "args": args}))
PY
}
R_PKGS=$(req '" ".join([*ns["R_PACKAGES"], *ns["R_PACKAGES_OPTIONAL"]])')
DEB_PKGS=$(req '" ".join(ns["DEBIAN_PACKAGES"].values())')
CONDA_PKGS=$(req '" ".join(ns["CONDA_PACKAGES"].values())')
SPLIT_PKGS=$(req '" ".join(ns.get("RPY2_SPLIT_PACKAGES", ("rpy2-rinterface", "rpy2-robjects")))')

# A conda env made by an earlier run comes first on PATH.
if [ -x "$CONDA_ENV/bin/Rscript" ]; then
  export PATH="$CONDA_ENV/bin:$PATH"
  PYTHON=$CONDA_ENV/bin/python
  VENV_FLAGS=(--system-site-packages)
fi

missing_r_packages() {  # prints the missing R package names (all of them when R is absent)
  if ! command -v Rscript >/dev/null 2>&1; then echo "$R_PKGS"; return; fi
  # package names go in as arguments, never pasted into R code
  Rscript --vanilla -e 'a <- commandArgs(trailingOnly = TRUE); cat(a[!nzchar(vapply(a, function(p) system.file(package = p), ""))])' $R_PKGS
}
have_compiler() { command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1; }

MISSING=$(missing_r_packages)
if [ -z "$MISSING" ] && have_compiler; then
  log "R $(Rscript --version 2>&1 | sed -n 's/.*version \([0-9.]*\).*/\1/p') and all R packages present"
else
  [ -n "$MISSING" ] && log "missing R pieces: ${MISSING}"
  have_compiler || log "no C compiler (rpy2 compiles against R's headers)"
  CONDA=$(command -v mamba || command -v conda || true)
  SUDO=none
  if command -v apt-get >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO=sudo; fi
  fi
  if [ -n "$CONDA" ]; then
    log "using $CONDA: env $CONDA_ENV from environment.yml"
    if [ -d "$CONDA_ENV/conda-meta" ]; then
      "$CONDA" env update -p "$CONDA_ENV" -f environment.yml
    else
      "$CONDA" env create -p "$CONDA_ENV" -f environment.yml
    fi
    export PATH="$CONDA_ENV/bin:$PATH"
    PYTHON=$CONDA_ENV/bin/python
    VENV_FLAGS=(--system-site-packages)
  elif [ "$SUDO" != none ]; then
    PKGS="r-base-core r-base-dev $DEB_PKGS"
    # Debian's own python3 needs these for venv + compiling rpy2
    "$PYTHON" -c 'import ensurepip' 2>/dev/null || PKGS="$PKGS python3-venv"
    "$PYTHON" -c 'import os, sysconfig, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' || PKGS="$PKGS python3-dev"
    log "installing with apt-get: $PKGS"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -q
    # shellcheck disable=SC2086
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $PKGS
  else
    die "R or R packages are missing (${MISSING:-C compiler}) and neither conda/mamba nor a usable apt-get (root or passwordless sudo) is available. Install one of:
  Debian/Ubuntu: sudo apt-get install --no-install-recommends r-base-core r-base-dev $DEB_PKGS
  conda:         conda env create -p .conda-env -f environment.yml   (packages: r-base $CONDA_PKGS)
  then run 'make setup' again."
  fi
  MISSING=$(missing_r_packages)
  [ -z "$MISSING" ] || die "still missing after install: $MISSING"
fi

read -r R_MAJOR R_MINOR R_FULL < <(Rscript --vanilla -e 'v <- R.version; cat(v$major, strsplit(v$minor, ".", fixed = TRUE)[[1]][1], paste(v$major, v$minor, sep = "."), "\n")')
RPY2_REQ=$(req 'ns["rpy2_requirement"]((int(args[0]), int(args[1])))' "$R_MAJOR" "$R_MINOR")

# pyproject.toml force-includes r/ (the R sources) in the wheel; hatchling fails obscurely without it.
[ -d r ] && [ -n "$(ls -A r 2>/dev/null)" ] ||
  die "r/ (the package's R sources, shipped as pylme_alliance/r) is missing or empty in $ROOT; check out the complete repository."

# ---- .venv -------------------------------------------------------------------------------
PY_REAL=$("$PYTHON" -c 'import sys, os; print(os.path.realpath(sys.executable))')
KEY=$(cat pyproject.toml "$REQ" scripts/setup.sh | "$PYTHON" -c 'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')
KEY="$KEY r=$R_FULL rpy2=$RPY2_REQ py=$PY_REAL"

if [ "${PYLME_FORCE_SETUP:-0}" != 1 ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$KEY" ] && "$VENV/bin/python" -c 'import pylme_alliance' 2>/dev/null; then
  log "up to date (.venv, R $R_FULL, $RPY2_REQ)"
  exit 0
fi

# A venv built on another base interpreter (or a broken one) is rebuilt.
if [ -x "$VENV/bin/python" ]; then
  VENV_BASE=$("$VENV/bin/python" -c 'import sys, os; print(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))' 2>/dev/null || echo broken)
  if [ "$VENV_BASE" != "$PY_REAL" ]; then log "rebuilding .venv (was on $VENV_BASE)"; rm -rf "$VENV"; fi
fi
if [ ! -x "$VENV/bin/python" ]; then
  log "creating .venv with $PY_REAL"
  "$PYTHON" -m venv "${VENV_FLAGS[@]}" "$VENV"
fi
VPY=$VENV/bin/python

# rpy2 3.6+ is a meta package over rpy2-rinterface/rpy2-robjects; if this R needs the
# self-contained 3.5 series, drop the split packages first (they overwrite 3.5's modules).
if "$VPY" - "$RPY2_REQ" $SPLIT_PKGS <<'PY'
import sys
from importlib.metadata import version, PackageNotFoundError
try:
    from packaging.requirements import Requirement
except ImportError:  # pip always vendors it
    from pip._vendor.packaging.requirements import Requirement
req, split = Requirement(sys.argv[1]), sys.argv[2:]
wants_35 = req.specifier.contains("3.5.17")  # the self-contained series
present = []
for name in split:
    try:
        version(name); present.append(name)
    except PackageNotFoundError:
        pass
sys.exit(0 if (wants_35 and present) else 1)
PY
then
  log "removing rpy2 split packages ($SPLIT_PKGS): this R needs $RPY2_REQ"
  # shellcheck disable=SC2086
  "$VPY" -m pip uninstall -y -q rpy2 $SPLIT_PKGS
fi

log "installing the package (editable, [test]) and $RPY2_REQ into .venv"
"$VPY" -m pip install -q --upgrade-strategy only-if-needed -e '.[test]' "$RPY2_REQ" 'hatchling>=1.18'

# rpy2 must actually load this R (catches "undefined symbol" mismatches now, not in a test).
if ! "$VPY" -c 'import rpy2.rinterface as ri; ri.initr()' >/dev/null 2>&1; then
  "$VPY" -c 'import rpy2.rinterface as ri; ri.initr()' 2>&1 | tail -n 3 >&2 || true
  die "rpy2 does not load R $R_FULL; run 'make doctor' for the fix."
fi
printf '%s' "$KEY" > "$STAMP"
log "done: .venv ready (R $R_FULL, $("$VPY" -c 'from importlib.metadata import version; print("rpy2", version("rpy2"))'))"
