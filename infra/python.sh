#!/usr/bin/env bash
# The project's virtual environment at <repo>/.venv with facestream installed (editable) and the
# extras named in $1 (default "dev,models"), plus one model runtime: onnxruntime (extra "cpu"), or
# onnxruntime-gpu (extra "gpu") when FACESTREAM_GPU=1. Re-installs only when pyproject.toml, the
# extras or the runtime changed.
LOG_PREFIX=python
# shellcheck source=infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

runtime=cpu other=onnxruntime-gpu
if [[ "${FACESTREAM_GPU:-0}" == 1 ]]; then
  runtime=gpu other=onnxruntime
fi
extras="$runtime,${1:-dev,models}"
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
  # Both runtimes install the module `onnxruntime`: removing one breaks the other's files, so a
  # switch removes both before this one is installed.
  if "$venv/bin/python" -m pip show -q "$other" >/dev/null 2>&1; then
    log "switching the model runtime to ${runtime}: removing onnxruntime and onnxruntime-gpu"
    "$venv/bin/python" -m pip uninstall -q -y onnxruntime onnxruntime-gpu
  fi
  "$venv/bin/python" -m pip install -q -e "$REPO_ROOT[$extras]"
  printf '%s\n' "$want" >"$stamp"
fi
log "ready: $venv/bin/facestream"
