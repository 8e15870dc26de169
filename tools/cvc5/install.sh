#!/usr/bin/env bash
# Installs the SMT solver behind `partner-gateway policy verify`, `policy
# diff` and the gateway's invariant checks: cvc5 1.3.1, the release
# cedar-policy-symcc is tested with, from its PyPI wheel (the library and
# Python bindings; the wheel has no executable), with ./cvc5-smt as the
# `cvc5` executable SymCC drives. Idempotent: reuses a complete install.
# policies/README.md ("The solver") says why this one.
#
#   bash tools/cvc5/install.sh           # installs, prints the executable's path
#   export CVC5="$(bash tools/cvc5/install.sh)"
#
# Where: $PGW_CVC5_HOME, default ~/.local/share/partner-gateway/cvc5-1.3.1.
set -euo pipefail
version=1.3.1
here="$(cd "$(dirname "$0")" && pwd)"
home="${PGW_CVC5_HOME:-${XDG_DATA_HOME:-$HOME/.local/share}/partner-gateway/cvc5-$version}"
python="$home/venv/bin/python"

has_version() {
  "$python" -c "import cvc5, sys; v = cvc5.Solver(cvc5.TermManager()).getVersion().decode(); sys.exit(v.split('-')[0] != '$version')" 2>/dev/null
}
if ! has_version; then
  echo "== installing cvc5 $version (PyPI wheel) into $home" >&2
  source "$here/../../.ci/apt.sh"
  python_venv "$home/venv" >&2
  "$python" -m pip install --quiet --disable-pip-version-check "cvc5==$version" >&2
  has_version || { echo "cvc5 $version did not install into $home/venv" >&2; exit 1; }
fi
# The command loop, run by the venv's Python (rewritten each time: cheap,
# and a changed ./cvc5-smt takes effect).
mkdir -p "$home/bin"
sed "1s|.*|#!$python|" "$here/cvc5-smt" > "$home/bin/cvc5.new"
chmod +x "$home/bin/cvc5.new"
mv -f "$home/bin/cvc5.new" "$home/bin/cvc5"
"$home/bin/cvc5" --version | grep -q "version $version" || { echo "$home/bin/cvc5 is not cvc5 $version" >&2; exit 1; }
echo "$home/bin/cvc5"
