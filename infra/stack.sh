#!/usr/bin/env bash
# The whole local stack: Kafka (KRaft), ClickHouse, InfluxDB as plain background processes.
#
#   infra/stack.sh install | start | stop | restart | status | env
#
# All state under $FACESTREAM_STATE (default <repo>/.facestream). start is idempotent; status exits
# 0 only when all three run. Nothing is exported: `start`, `status` and `env` print the variables
# a client sets (eval "$(infra/stack.sh env)" takes them into a shell).
LOG_PREFIX=stack
# shellcheck source=infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SERVICES=(kafka clickhouse influxdb)

each() {
  local s rc=0
  for s in "${SERVICES[@]}"; do bash "$INFRA_DIR/$s.sh" "$1" || rc=$?; done
  return "$rc"
}

print_env() {
  cat <<EOF
export FACESTREAM_STATE=$FACESTREAM_STATE
export FACESTREAM_KAFKA__BROKER=kafka://$FACESTREAM_HOST:$FACESTREAM_KAFKA_PORT
export FACESTREAM_STORAGE__CLICKHOUSE_URL=clickhouse://$FACESTREAM_HOST:$FACESTREAM_CLICKHOUSE_TCP_PORT
export FACESTREAM_INFLUX_MONITORING__HOST=$FACESTREAM_HOST
export FACESTREAM_INFLUX_MONITORING__PORT=$FACESTREAM_INFLUXDB_PORT
export FACESTREAM_INFLUX_MONITORING__DATABASE=$FACESTREAM_INFLUXDB_DB
EOF
}

do_install() { each install; }

do_start() {
  local t0; t0=$(now_ms)
  each start
  log "stack up in $(( $(now_ms) - t0 )) ms"
  do_status
}

do_stop() {
  # reverse order: writers' backends last
  local i
  for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do bash "$INFRA_DIR/${SERVICES[i]}.sh" stop; done
}

do_status() {
  local rc=0
  each status || rc=$?
  echo "# client environment:"
  print_env
  return "$rc"
}

case "${1:-}" in
  env) print_env ;;
  *) dispatch "$@" ;;
esac
