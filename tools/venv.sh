#!/bin/sh
# Makes (or reuses) the virtual environment that `make demo` / `make test`
# run in:  tools/venv.sh PYTHON VENV
#
# The interpreter's version picks the stack (README, "Stacks"):
#   Python 3.9-3.11   pinned stack   requirements.txt
#   Python 3.12-3.13  current stack  requirements-tf2.21.txt
# VENV/.installed records the interpreter and a hash of the requirements
# file; VENV is reused only when both match and is otherwise rebuilt. A
# failed or interrupted install removes VENV, so no half-made environment
# is left for the next run. Problems are reported in one line.
set -u

python=$1
venv=$2

fail() {
  echo "error: $*" >&2
  exit 1
}

command -v "$python" >/dev/null 2>&1 ||
  fail "PYTHON: expected a Python interpreter, got '$python' (no such command)"
# Probes with a statement every Python 3 parses; an interpreter that cannot
# run it (or a pyenv shim of a version that is not selected) is unusable.
version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' \
  2>/dev/null) ||
  fail "PYTHON: expected a working Python interpreter, got '$python' (it does not run)"

case $version in
  3.9 | 3.10 | 3.11) requirements=requirements.txt ;;
  3.12 | 3.13) requirements=requirements-tf2.21.txt ;;
  *) fail "PYTHON: expected Python 3.9-3.11 (pinned stack, TensorFlow 2.15) or 3.12-3.13 (current stack, TensorFlow 2.21), got $version from '$python'" ;;
esac

interpreter=$("$python" -c '
import os, sys
print("Python", sys.version.split()[0], os.path.realpath(sys.executable))')
digest=$("$python" -c '
import hashlib, sys
print(sys.argv[1], hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())
' "$requirements" 2>/dev/null) ||
  fail "$requirements: expected a readable requirements file"
stamp="$venv/.installed"

if [ -f "$stamp" ]; then
  made_with=$(sed -n 1p "$stamp")
  made_from=$(sed -n 2p "$stamp")
  if [ "$made_with" = "$interpreter" ] && [ "$made_from" = "$digest" ]; then
    exit 0
  elif [ -z "$made_with" ]; then
    echo "rebuilding $venv: it records no interpreter (an older set-up made it)" >&2
  elif [ "$made_with" != "$interpreter" ]; then
    echo "rebuilding $venv: it was made by $made_with, now $interpreter" >&2
  else
    echo "rebuilding $venv: ${made_from%% *} changed since it was installed" >&2
  fi
elif [ -e "$venv" ]; then
  echo "rebuilding $venv: its last install did not finish" >&2
fi
rm -rf "$venv"

trap 'rm -rf "$venv"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
echo "installing $requirements into $venv with Python $version ($python)" >&2
"$python" -m venv "$venv" ||
  fail "$venv: python -m venv failed with '$python' (see above)"
"$venv/bin/python" -m pip install --quiet --upgrade pip &&
  "$venv/bin/python" -m pip install --quiet -r "$requirements" ||
  fail "$requirements: pip could not install it (see above); $venv removed"
printf "%s\n%s\n" "$interpreter" "$digest" > "$stamp"
trap - EXIT
