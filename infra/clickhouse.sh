#!/usr/bin/env bash
# ClickHouse server (Debian 12 package: 18.16) as a background process with a private config.
#
#   infra/clickhouse.sh install   apt-get install clickhouse-server clickhouse-client (when absent)
#   infra/clickhouse.sh start     write config.xml + users.xml, start, wait for SELECT 1 over HTTP
#   infra/clickhouse.sh stop
#   infra/clickhouse.sh status
#
# Env: FACESTREAM_STATE, FACESTREAM_CLICKHOUSE_TCP_PORT (19000), FACESTREAM_CLICKHOUSE_HTTP_PORT (18123).
# User `default`, no password, localhost only; database `default`.
LOG_PREFIX=clickhouse
# shellcheck source=infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NAME=clickhouse
DIR="$(state_dir "$NAME")"
HTTP_URL="http://$FACESTREAM_HOST:$FACESTREAM_CLICKHOUSE_HTTP_PORT"

# The server command: Debian's separate binary, else a single `clickhouse` binary (upstream builds).
server_cmd() {
  if [[ -x /usr/sbin/clickhouse-server ]]; then echo /usr/sbin/clickhouse-server
  elif command -v clickhouse-server >/dev/null; then command -v clickhouse-server
  elif [[ -x /usr/bin/clickhouse ]]; then echo "/usr/bin/clickhouse server"
  else return 1
  fi
}

do_install() {
  local pkgs=()
  server_cmd >/dev/null || pkgs+=(clickhouse-server)
  command -v clickhouse-client >/dev/null || [[ -x /usr/bin/clickhouse ]] || pkgs+=(clickhouse-client)
  command -v curl >/dev/null || pkgs+=(curl)
  if ((${#pkgs[@]})); then
    log "apt-get install ${pkgs[*]}"
    apt_install "${pkgs[@]}"
  fi
  log "installed: $(server_cmd) ($(clickhouse-client --version 2>/dev/null | head -n1 || true))"
}

write_config() {
  mkdir -p "$DIR/data" "$DIR/tmp" "$DIR/user_files" "$DIR/format_schemas" "$DIR/logs"
  cat >"$DIR/config.xml" <<EOF
<?xml version="1.0"?>
<!-- Written by infra/clickhouse.sh on every start: edit the script, not this file. -->
<yandex>
    <logger>
        <level>information</level>
        <log>$DIR/logs/clickhouse-server.log</log>
        <errorlog>$DIR/logs/clickhouse-server.err.log</errorlog>
        <size>100M</size>
        <count>3</count>
    </logger>
    <listen_host>$FACESTREAM_HOST</listen_host>
    <tcp_port>$FACESTREAM_CLICKHOUSE_TCP_PORT</tcp_port>
    <http_port>$FACESTREAM_CLICKHOUSE_HTTP_PORT</http_port>
    <max_connections>1024</max_connections>
    <keep_alive_timeout>3</keep_alive_timeout>
    <max_concurrent_queries>100</max_concurrent_queries>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <mark_cache_size>536870912</mark_cache_size>
    <path>$DIR/data/</path>
    <tmp_path>$DIR/tmp/</tmp_path>
    <user_files_path>$DIR/user_files/</user_files_path>
    <format_schema_path>$DIR/format_schemas/</format_schema_path>
    <users_config>$DIR/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
    <builtin_dictionaries_reload_interval>3600</builtin_dictionaries_reload_interval>
    <max_session_timeout>3600</max_session_timeout>
    <default_session_timeout>60</default_session_timeout>
    <query_log>
        <database>system</database>
        <table>query_log</table>
        <partition_by>toYYYYMM(event_date)</partition_by>
        <flush_interval_milliseconds>7500</flush_interval_milliseconds>
    </query_log>
    <max_table_size_to_drop>0</max_table_size_to_drop>
    <max_partition_size_to_drop>0</max_partition_size_to_drop>
</yandex>
EOF
  cat >"$DIR/users.xml" <<EOF
<?xml version="1.0"?>
<!-- Written by infra/clickhouse.sh. One user, default, no password, loopback only. -->
<yandex>
    <profiles>
        <default>
            <max_memory_usage>4000000000</max_memory_usage>
            <use_uncompressed_cache>0</use_uncompressed_cache>
            <load_balancing>random</load_balancing>
        </default>
        <readonly>
            <readonly>1</readonly>
        </readonly>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks>
                <ip>::1</ip>
                <ip>127.0.0.1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
EOF
}

ready() { [[ "$(curl -fsS --max-time 2 "$HTTP_URL/?query=SELECT%201")" == 1 ]]; }

do_start() {
  local t0 cmd; t0=$(now_ms)
  if is_running "$NAME"; then
    log "already running (pid $(read_pid "$NAME")) on $HTTP_URL"
    wait_until "$NAME" 60 ready
    return 0
  fi
  cmd="$(server_cmd)" || die "clickhouse-server not installed: run infra/clickhouse.sh install"
  command -v curl >/dev/null || die "curl not installed: run infra/clickhouse.sh install"
  ensure_port_free "$NAME" "$FACESTREAM_CLICKHOUSE_TCP_PORT" "$FACESTREAM_CLICKHOUSE_HTTP_PORT"
  write_config
  # shellcheck disable=SC2086
  start_daemon "$NAME" $cmd --config-file="$DIR/config.xml"
  wait_until "$NAME" 60 ready || die "ClickHouse did not answer SELECT 1 (logs: $DIR/logs/)"
  log "started (pid $(read_pid "$NAME")) native $FACESTREAM_HOST:$FACESTREAM_CLICKHOUSE_TCP_PORT, http $HTTP_URL in $(( $(now_ms) - t0 )) ms"
}

do_stop() { stop_daemon "$NAME" 30; }
do_status() {
  status_line "$NAME" "clickhouse://default@$FACESTREAM_HOST:$FACESTREAM_CLICKHOUSE_TCP_PORT/default (http $HTTP_URL)"
}

dispatch "$@"
