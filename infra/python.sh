#!/usr/bin/env bash
# The project's virtual environment at <repo>/.venv with facestream installed (editable) and the
# extras named in $1 (default "dev,models"). Re-installs only when pyproject.toml changed.
LOG_PREFIX=python
# shellcheck source=infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

extras="${1:-dev,models}"
venv="$REPO_ROOT/.venv"
stamp="$venv/.facestream-installed"
want="$(sha256sum "$REPO_ROOT/pyproject.toml" | cut -d' ' -f1) $extras"

python="${FACESTREAM_BASE_PYTHON:-python3}"
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || die "Python >= 3.11 is needed (found $("$python" --version 2>&1)); set FACESTREAM_BASE_PYTHON"

if [[ ! -x "$venv/bin/python" ]]; then
  log "creating $venv"
  "$python" -m venv "$venv"
fi
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  log "installing facestream[$extras] into $venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q -e "$REPO_ROOT[$extras]"
  printf '%s\n' "$want" >"$stamp"
fi
log "ready: $venv/bin/facestream"
