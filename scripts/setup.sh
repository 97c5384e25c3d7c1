#!/usr/bin/env bash
# Set up whatever is missing to run rlg-hotreload from this checkout, and nothing else.
#
#   scripts/setup.sh            what the demo needs: EGL system libraries, .venv, torch, .[stream,mujoco]
#   scripts/setup.sh --dev      what the whole test suite needs as well: xvfb, chromium, .[...,gpu,dev,remote]
#   scripts/setup.sh --check    say what would be done, change nothing (exit 0: nothing to do, 1: something)
#
# scripts/demo.sh and scripts/test.sh source this file and call rlg_setup. Why a script and not only
# pip: a fresh Debian/Ubuntu machine lacks system libraries (EGL for headless MuJoCo rendering, a
# browser for the page test) and often python3-venv; a newcomer should not have to find them by failure.
# Every step looks first and says "already there" when it is, so a second run takes about a second.
#
# Settings (environment variables):
#   RLG_PYTHON  the Python to build the virtualenv from (default: python3). If it already has torch,
#               that torch is kept: the virtualenv sees its packages and pip installs only what is missing.
#   RLG_VENV    where the virtualenv lives (default: .venv in the checkout).
#   RLG_TORCH   what pip installs when no torch is there (default: torch==2.13.0).
# System packages are installed with apt-get as root, or with sudo; otherwise one line names them.

RLG_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RLG_VENV="${RLG_VENV:-$RLG_ROOT/.venv}"
RLG_PYTHON="${RLG_PYTHON:-python3}"
RLG_TORCH="${RLG_TORCH:-torch==2.13.0}"
# headless MuJoCo rendering (EGL); the tests also open the viewer on a virtual display and drive chromium
RLG_APT_BASE="libegl1 libgl1 libegl-mesa0 libglx-mesa0 libgl1-mesa-dri"
RLG_APT_DEV="xvfb"
RLG_APT_BROWSER="chromium chromium-driver"  # Debian's names (Ubuntu ships chromium as a snap)
RLG_STAMP_NAME=".rlg-setup-stamp"

rlg_say() { printf '[setup] %s\n' "$*"; }

# Packages of "$@" that dpkg does not list as installed.
rlg_missing_debs() {
  local p out=""
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || out="$out $p"
  done
  echo "${out# }"
}

# apt-get install "$@" as root or through sudo; otherwise say which packages are missing. Returns 1 if
# they could not be installed (the caller decides whether that stops the setup).
rlg_apt_install() {
  local sudo=""
  if ! command -v apt-get >/dev/null 2>&1; then
    rlg_say "no apt-get here: install these system packages yourself: $*"
    return 1
  fi
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1 && { sudo -n true 2>/dev/null || [ -t 0 ]; }; then
      sudo="sudo"
    else
      rlg_say "not root and no sudo: ask an admin to run: apt-get install $*"
      return 1
    fi
  fi
  if [ -z "${RLG_APT_UPDATED:-}" ]; then
    rlg_say "running: ${sudo:+sudo }apt-get update"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
      || rlg_say "apt-get update failed; trying with the current package lists"
    RLG_APT_UPDATED=1
  fi
  rlg_say "running: ${sudo:+sudo }apt-get install $*"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Step 1: system packages (and Python itself, with venv support, when the virtualenv is still to be made).
rlg_system_packages() {
  local dev="$1" check="$2" want="$RLG_APT_BASE" missing py_ver
  [ "$dev" = 1 ] && want="$want $RLG_APT_DEV $RLG_APT_BROWSER"
  if [ ! -x "$RLG_VENV/bin/python" ]; then
    if ! command -v "$RLG_PYTHON" >/dev/null 2>&1; then
      [ "$RLG_PYTHON" = python3 ] || { rlg_say "RLG_PYTHON=$RLG_PYTHON: not found"; return 2; }
      want="python3 python3-venv $want"
    elif ! "$RLG_PYTHON" -c "import ensurepip" >/dev/null 2>&1; then
      py_ver="$("$RLG_PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
      case "$(command -v "$RLG_PYTHON")" in
        /usr/bin/*) want="python$py_ver-venv $want" ;;  # Debian ships venv support separately
        *) rlg_say "$RLG_PYTHON cannot make virtualenvs (no ensurepip); set RLG_PYTHON to one that can"
           return 2 ;;
      esac
    fi
  fi
  if ! command -v dpkg-query >/dev/null 2>&1; then
    rlg_say "not a Debian/Ubuntu system: make sure these (or your system's equivalents) are installed: $want"
    return 0
  fi
  # shellcheck disable=SC2086  # word lists on purpose
  missing="$(rlg_missing_debs $want)"
  if [ -z "$missing" ]; then
    rlg_say "system packages: already there ($want)"
    return 0
  fi
  if [ "$check" = 1 ]; then
    rlg_say "would install system packages: $missing"
    return 1
  fi
  # the browser is for the page test only (skipped without it): its failure must not stop the setup
  local browser="" core="" p
  for p in $missing; do
    case " $RLG_APT_BROWSER " in *" $p "*) browser="$browser $p" ;; *) core="$core $p" ;; esac
  done
  # shellcheck disable=SC2086
  if [ -n "$core" ] && ! rlg_apt_install $core; then
    case "$core" in *python3*) return 2 ;; esac  # no Python or no venv: nothing else can be done
    rlg_say "continuing without them: headless rendering will fail until they are installed"
  fi
  # shellcheck disable=SC2086
  if [ -n "$browser" ] && ! rlg_apt_install $browser; then
    rlg_say "continuing without them: the browser test will be skipped"
  fi
  return 0
}

# Step 2: the project's virtualenv. If the base Python has torch, the virtualenv sees it (kept, not
# downloaded again): --system-site-packages for a system/pyenv/conda Python, a .pth file for an active
# virtualenv (whose packages --system-site-packages would not show).
rlg_venv() {
  local check="$1" torch_dir base_torch venv_site py_exe
  if [ -x "$RLG_VENV/bin/python" ]; then
    if "$RLG_VENV/bin/python" -c "" >/dev/null 2>&1; then
      rlg_say "virtualenv $RLG_VENV: already there ($("$RLG_VENV/bin/python" -V 2>&1))"
      return 0
    fi
    rlg_say "virtualenv $RLG_VENV is broken (its Python does not start): remove it (rm -rf $RLG_VENV) and rerun"
    return 2
  fi
  if [ -e "$RLG_VENV" ] && [ -n "$(ls -A "$RLG_VENV" 2>/dev/null)" ]; then
    rlg_say "$RLG_VENV exists but is not a virtualenv: move it away or set RLG_VENV"
    return 2
  fi
  if ! command -v "$RLG_PYTHON" >/dev/null 2>&1; then
    if [ "$check" = 1 ]; then
      rlg_say "would create virtualenv $RLG_VENV from $RLG_PYTHON, once installed"
      return 1
    fi
    rlg_say "$RLG_PYTHON: not found; install Python >= 3.8 with venv support (Debian: apt-get install python3 python3-venv)"
    return 2
  fi
  if ! "$RLG_PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 8))'; then
    rlg_say "$RLG_PYTHON is $("$RLG_PYTHON" -V 2>&1); rlg-hotreload needs Python >= 3.8: set RLG_PYTHON to one"
    return 2
  fi
  torch_dir="$("$RLG_PYTHON" -c 'import importlib.util as u, os; s = u.find_spec("torch"); print(os.path.dirname(os.path.dirname(s.origin)) if s and s.origin else "")' 2>/dev/null)"
  base_torch=""
  [ -n "$torch_dir" ] && base_torch="$("$RLG_PYTHON" -c 'from importlib.metadata import version; print(version("torch"))' 2>/dev/null)"
  RLG_BASE_TORCH="$base_torch"
  py_exe="$("$RLG_PYTHON" -c 'import sys; print(sys.executable)') ($("$RLG_PYTHON" -V 2>&1))"
  if [ "$check" = 1 ]; then
    rlg_say "would create virtualenv $RLG_VENV from $py_exe${base_torch:+, keeping its torch $base_torch}"
    return 1
  fi
  if [ -n "$torch_dir" ]; then
    rlg_say "creating virtualenv $RLG_VENV from $py_exe; it sees the torch $base_torch installed there"
    "$RLG_PYTHON" -m venv --system-site-packages "$RLG_VENV" || { rm -rf "$RLG_VENV"; return 2; }  # checked empty above
    if ! (cd / && "$RLG_VENV/bin/python" -c "import importlib.util as u, sys; sys.exit(u.find_spec('torch') is None)"); then
      venv_site="$("$RLG_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
      echo "$torch_dir" >"$venv_site/rlg-keep-torch.pth"
      rlg_say "torch lives in $torch_dir (another virtualenv): linked it with $venv_site/rlg-keep-torch.pth"
    fi
  else
    rlg_say "creating virtualenv $RLG_VENV from $py_exe"
    "$RLG_PYTHON" -m venv "$RLG_VENV" || { rm -rf "$RLG_VENV"; return 2; }  # checked empty above
  fi
  # editable installs of a setup.cfg project need pip >= 21.3 (PEP 660); older distributions ship older
  "$RLG_VENV/bin/python" -m pip install -q "pip>=21.3" || return 2
}

# Step 3: torch, unless one is there already (in the virtualenv or the Python it was made from).
rlg_torch() {
  local check="$1" have
  have="$(cd / && "$RLG_VENV/bin/python" -c 'from importlib.metadata import version; print(version("torch"))' 2>/dev/null)"
  if [ -n "$have" ]; then
    rlg_say "torch $have: already there (kept)"
    return 0
  fi
  if [ "$check" = 1 ]; then
    rlg_say "would install $RLG_TORCH (set RLG_TORCH for another build, or install torch first)"
    return 1
  fi
  rlg_say "installing $RLG_TORCH into $RLG_VENV (no torch found; set RLG_TORCH for another build)"
  "$RLG_VENV/bin/python" -m pip install "$RLG_TORCH" || return 2
}

# Step 4: this checkout, editable, with its extras. A stamp in the virtualenv records the packaging
# files' hash and the extras installed; pip runs only when they changed or the import points elsewhere.
rlg_project() {
  local dev="$1" check="$2" extras="stream,mujoco" hash stamp="$RLG_VENV/$RLG_STAMP_NAME" old="" want here
  [ "$dev" = 1 ] && extras="stream,mujoco,gpu,dev,remote"
  extras="$(rlg_union "" "$extras")"  # sorted, as the stamp keeps them
  hash="$(cat "$RLG_ROOT/setup.cfg" "$RLG_ROOT/setup.py" "$RLG_ROOT/pyproject.toml" | sha256sum | cut -c1-16)"
  [ -f "$stamp" ] && old="$(cat "$stamp")"
  here="$(cd / && "$RLG_VENV/bin/python" -c 'import os, rlg_hotreload as r; print(os.path.dirname(os.path.dirname(os.path.abspath(r.__file__))))' 2>/dev/null)"
  if [ "$here" = "$RLG_ROOT" ] && [ "${old%% *}" = "$hash" ]; then
    want="$(rlg_union "${old#* }" "$extras")"
    if [ "$want" = "${old#* }" ]; then
      rlg_say "rlg-hotreload[$want] (editable, this checkout): already there"
      return 0
    fi
  else
    want="$extras"
    [ "${old%% *}" = "$hash" ] && want="$(rlg_union "${old#* }" "$extras")"
  fi
  if [ "$check" = 1 ]; then
    rlg_say "would install rlg-hotreload[$want] (editable) and its dependencies"
    return 1
  fi
  rlg_say "installing rlg-hotreload[$want] (editable) and its dependencies (pip; minutes the first time)"
  local tools=""
  [ "$dev" = 1 ] && tools="setuptools>=61 wheel"  # the packaging test builds a wheel without isolation
  # shellcheck disable=SC2086
  (cd "$RLG_ROOT" && "$RLG_VENV/bin/python" -m pip install -q -e ".[$want]" $tools) || return 2
  echo "$hash $want" >"$stamp"
}

# The sorted union of two comma-separated extras lists.
rlg_union() {
  echo "$1,$2" | tr ',' '\n' | sed '/^$/d' | sort -u | paste -sd, -
}

# rlg_setup [--dev] [--check]: the four steps, in order; stops at the first that cannot be done.
rlg_setup() {
  local dev=0 check=0 todo=0 rc t0=$SECONDS arg
  for arg in "$@"; do
    case "$arg" in
      --dev) dev=1 ;;
      --check) check=1 ;;
      *) echo "error: scripts/setup.sh: unknown option '$arg'; allowed: --dev, --check" >&2; return 2 ;;
    esac
  done
  rc=0; rlg_system_packages "$dev" "$check" || rc=$?
  [ $rc = 2 ] && return 2; [ $rc = 1 ] && todo=1
  if [ $check = 1 ] && [ ! -x "$RLG_VENV/bin/python" ]; then
    rlg_venv 1 || true
    local then="rlg-hotreload with its dependencies"
    [ -n "${RLG_BASE_TORCH:-}" ] || then="$RLG_TORCH, then $then"
    rlg_say "would then install $then"
    return 1
  fi
  rc=0; rlg_venv "$check" || rc=$?
  [ $rc = 2 ] && return 2; [ $rc = 1 ] && todo=1
  rc=0; rlg_torch "$check" || rc=$?
  [ $rc = 2 ] && return 2; [ $rc = 1 ] && todo=1
  rc=0; rlg_project "$dev" "$check" || rc=$?
  [ $rc = 2 ] && return 2; [ $rc = 1 ] && todo=1
  if [ $check = 1 ]; then
    [ $todo = 0 ] && rlg_say "nothing to do"
    return $todo
  fi
  rlg_say "ready in $((SECONDS - t0)) s: $RLG_VENV/bin/python"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  rlg_setup "$@"
  exit $?
fi
