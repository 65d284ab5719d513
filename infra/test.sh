#!/usr/bin/env bash
# README command 2: the whole test suite against the real servers (.ci/run calls this).
# Installs what is missing, starts Kafka, ClickHouse and InfluxDB, runs pytest with the
# arguments given (default: everything).
LOG_PREFIX=test
# shellcheck source=infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

bash infra/python.sh dev,models
bash infra/stack.sh install
bash infra/stack.sh start >/dev/null
eval "$(bash infra/stack.sh env)"
exec .venv/bin/python -m pytest "${@:-tests}"
