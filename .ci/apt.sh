# Sourced by .ci/run, .ci/postgres.sh, fuzz/run and bench/run: the one way
# this project installs Debian packages.
# `apt_install PACKAGE...` installs those that are missing, as root or
# through sudo, and updates the package lists once per shell, first.
apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local as_root=()
  [ "$(id -u)" = 0 ] || as_root=(sudo)
  echo "== installing ${missing[*]} (Debian packages)"
  if [ -z "${PGW_APT_UPDATED:-}" ]; then
    "${as_root[@]}" apt-get update -qq
    PGW_APT_UPDATED=1
  fi
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# `python_venv DIR`: a virtual environment at DIR (Debian's python3 is
# externally managed: nothing is installed into it), with python3-venv
# installed first where the interpreter lacks ensurepip.
python_venv() {
  python3 -c 'import ensurepip' 2>/dev/null || apt_install python3-venv
  [ -x "$1/bin/python" ] || python3 -m venv "$1"
}
