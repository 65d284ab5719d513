#!/usr/bin/env bash
# InfluxDB 1.x (Debian 12 package: 1.6.7) as a background process with a private config.
#
#   infra/influxdb.sh install   apt-get install influxdb (when influxd is absent)
#   infra/influxdb.sh start     write influxdb.conf, start, wait for /ping, CREATE DATABASE facestream
#   infra/influxdb.sh stop
#   infra/influxdb.sh status
#
# Env: FACESTREAM_STATE, FACESTREAM_INFLUXDB_PORT (18086), FACESTREAM_INFLUXDB_RPC_PORT (18088),
#      FACESTREAM_INFLUXDB_DB (facestream). No auth. 1.6.7 speaks the 1.x API only
#      (/write, /query, /ping): no /api/v2, no /health.
LOG_PREFIX=influxdb
# shellcheck source=infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NAME=influxdb
DIR="$(state_dir "$NAME")"
URL="http://$FACESTREAM_HOST:$FACESTREAM_INFLUXDB_PORT"
INFLUXD="${INFLUXD:-influxd}"

do_install() {
  local pkgs=()
  command -v "$INFLUXD" >/dev/null || pkgs+=(influxdb)
  command -v curl >/dev/null || pkgs+=(curl)
  if ((${#pkgs[@]})); then
    log "apt-get install ${pkgs[*]}"
    apt_install "${pkgs[@]}"
  fi
  log "installed: $("$INFLUXD" version 2>/dev/null | head -n1)"
}

write_config() {
  mkdir -p "$DIR/meta" "$DIR/data" "$DIR/wal" "$DIR/logs"
  # Debian's build spells the top-level switch `reporting-enabled` (upstream: reporting-disabled);
  # both are written, an unknown key is ignored.
  cat >"$DIR/influxdb.conf" <<EOF
# Written by infra/influxdb.sh on every start: edit the script, not this file.
reporting-enabled = false
reporting-disabled = true
bind-address = "$FACESTREAM_HOST:$FACESTREAM_INFLUXDB_RPC_PORT"

[meta]
  dir = "$DIR/meta"
  retention-autocreate = true
  logging-enabled = true

[data]
  dir = "$DIR/data"
  wal-dir = "$DIR/wal"
  index-version = "inmem"
  query-log-enabled = false
  cache-max-memory-size = 1073741824

[coordinator]
  write-timeout = "10s"

[retention]
  enabled = true
  check-interval = "30m0s"

[monitor]
  # no _internal database: it writes every 10 s and only grows
  store-enabled = false

[http]
  enabled = true
  bind-address = "$FACESTREAM_HOST:$FACESTREAM_INFLUXDB_PORT"
  auth-enabled = false
  log-enabled = false
  write-tracing = false
  pprof-enabled = false
  max-body-size = 26214400

[logging]
  format = "logfmt"
  level = "info"
  suppress-logo = true

[subscriber]
  enabled = false

[continuous_queries]
  enabled = true
  log-enabled = false
EOF
}

ready() { curl -fsS --max-time 2 -o /dev/null "$URL/ping"; }

create_db() {
  curl -fsS --max-time 10 -XPOST "$URL/query" \
    --data-urlencode "q=CREATE DATABASE \"$FACESTREAM_INFLUXDB_DB\"" >/dev/null
}

do_start() {
  local t0; t0=$(now_ms)
  if is_running "$NAME"; then
    log "already running (pid $(read_pid "$NAME")) on $URL"
    wait_until "$NAME" 60 ready
    create_db
    return 0
  fi
  command -v "$INFLUXD" >/dev/null || die "influxd not installed: run infra/influxdb.sh install"
  command -v curl >/dev/null || die "curl not installed: run infra/influxdb.sh install"
  ensure_port_free "$NAME" "$FACESTREAM_INFLUXDB_PORT" "$FACESTREAM_INFLUXDB_RPC_PORT"
  write_config
  start_daemon "$NAME" "$INFLUXD" run -config "$DIR/influxdb.conf"
  wait_until "$NAME" 60 ready || die "InfluxDB did not answer /ping (log: $(log_file "$NAME"))"
  create_db || die "CREATE DATABASE $FACESTREAM_INFLUXDB_DB failed"
  log "started (pid $(read_pid "$NAME")) on $URL, database $FACESTREAM_INFLUXDB_DB, in $(( $(now_ms) - t0 )) ms"
}

do_stop() { stop_daemon "$NAME" 30; }
do_status() { status_line "$NAME" "$URL (db $FACESTREAM_INFLUXDB_DB)"; }

dispatch "$@"
