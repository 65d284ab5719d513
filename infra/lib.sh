# shellcheck shell=bash
# Shared helpers for infra/{kafka,clickhouse,influxdb,stack}.sh. Source it; do not run it.
#
# Every server runs as a plain background process (no Docker, no systemd) with all of its state
# under $FACESTREAM_STATE/<name>/: config, data, logs and the pid file. Stopping goes by that pid.

set -euo pipefail

INFRA_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$INFRA_DIR/.." && pwd)"

export FACESTREAM_STATE="${FACESTREAM_STATE:-$REPO_ROOT/.facestream}"
mkdir -p "$FACESTREAM_STATE"
FACESTREAM_STATE="$(cd "$FACESTREAM_STATE" && pwd)"   # absolute: it is matched in /proc cmdlines

FACESTREAM_HOST="${FACESTREAM_HOST:-127.0.0.1}"

# Ports (each overridable from the environment).
FACESTREAM_KAFKA_PORT="${FACESTREAM_KAFKA_PORT:-19092}"
FACESTREAM_KAFKA_CONTROLLER_PORT="${FACESTREAM_KAFKA_CONTROLLER_PORT:-19093}"
FACESTREAM_CLICKHOUSE_TCP_PORT="${FACESTREAM_CLICKHOUSE_TCP_PORT:-19000}"
FACESTREAM_CLICKHOUSE_HTTP_PORT="${FACESTREAM_CLICKHOUSE_HTTP_PORT:-18123}"
FACESTREAM_INFLUXDB_PORT="${FACESTREAM_INFLUXDB_PORT:-18086}"
FACESTREAM_INFLUXDB_RPC_PORT="${FACESTREAM_INFLUXDB_RPC_PORT:-18088}"   # influxd backup/restore RPC
FACESTREAM_INFLUXDB_DB="${FACESTREAM_INFLUXDB_DB:-facestream}"

log() { printf '[%s] %s\n' "${LOG_PREFIX:-infra}" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# state_dir NAME -> $FACESTREAM_STATE/NAME (created)
state_dir() { mkdir -p "$FACESTREAM_STATE/$1"; printf '%s\n' "$FACESTREAM_STATE/$1"; }
pid_file() { printf '%s/%s.pid\n' "$FACESTREAM_STATE/$1" "$1"; }
log_file() { printf '%s/logs/%s.out\n' "$FACESTREAM_STATE/$1" "$1"; }

# now_ms: wall clock in milliseconds (for timings).
now_ms() { date +%s%3N; }

# read_pid NAME: prints the recorded pid, or nothing.
read_pid() {
  local f; f="$(pid_file "$1")"
  if [[ -s "$f" ]]; then tr -dc '0-9' <"$f"; fi
}

# pid_alive PID: the process exists and is not a zombie. (A daemon's parent is gone, so its
# zombie waits for pid 1 to reap it, which some container inits do only every second or so.)
pid_alive() {
  kill -0 "$1" 2>/dev/null || return 1
  [[ -r "/proc/$1/status" ]] || return 0
  ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

# is_running NAME: true when the recorded pid is alive AND its command line mentions
# $FACESTREAM_STATE (every daemon here is started with a config file under it), so a recycled
# pid of some unrelated process is never taken for ours.
is_running() {
  local pid; pid="$(read_pid "$1")"
  [[ -n "$pid" ]] || return 1
  pid_alive "$pid" || return 1
  [[ -r "/proc/$pid/cmdline" ]] || return 0   # no /proc: trust kill -0
  [[ "$(tr '\0' ' ' <"/proc/$pid/cmdline")" == *"$FACESTREAM_STATE"* ]]
}

# port_open PORT [HOST]: true when something accepts TCP connections there.
port_open() {
  local port="$1" host="${2:-$FACESTREAM_HOST}"
  timeout 1 bash -c "exec 3<>/dev/tcp/$host/$port" 2>/dev/null
}

# wait_until NAME TIMEOUT_S CMD...: polls CMD every 0.1 s until it succeeds. Fails at once
# (with the tail of the log) if daemon NAME dies meanwhile, or after TIMEOUT_S seconds.
wait_until() {
  local name="$1" timeout_s="$2"; shift 2
  local deadline=$(( $(now_ms) + timeout_s * 1000 ))
  while :; do
    if "$@" >/dev/null 2>&1; then return 0; fi
    if ! is_running "$name"; then
      log "$name exited during startup; last lines of $(log_file "$name"):"
      tail -n 30 "$(log_file "$name")" >&2 || true
      return 1
    fi
    if (( $(now_ms) > deadline )); then
      log "$name not ready after ${timeout_s}s (waiting on: $*); last lines of $(log_file "$name"):"
      tail -n 30 "$(log_file "$name")" >&2 || true
      return 1
    fi
    sleep 0.1
  done
}

# wait_for_port NAME PORT [TIMEOUT_S]
wait_for_port() { wait_until "$1" "${3:-60}" port_open "$2"; }

# ensure_port_free NAME PORT...: refuse to start when another process already holds a port.
ensure_port_free() {
  local name="$1"; shift
  local p
  for p in "$@"; do
    if port_open "$p"; then
      die "$name: port $p on $FACESTREAM_HOST is already taken by another process (not ours: no live pid in $(pid_file "$name")); stop it or set another port"
    fi
  done
}

# start_daemon NAME CMD...: runs CMD in its own session (setsid), immune to SIGHUP (nohup),
# stdin from /dev/null, stdout+stderr appended to $(log_file NAME); records the pid.
# setsid does not fork here (a background child of a non-interactive shell is no group leader),
# so $! is the daemon itself; that is checked.
start_daemon() {
  local name="$1"; shift
  local dir logf pidf pid
  dir="$(state_dir "$name")"; mkdir -p "$dir/logs"
  logf="$(log_file "$name")"; pidf="$(pid_file "$name")"
  printf '\n===== %s starting: %s\n' "$(date -Is)" "$*" >>"$logf"
  nohup setsid "$@" </dev/null >>"$logf" 2>&1 &
  pid=$!
  printf '%s\n' "$pid" >"$pidf"
  disown "$pid" 2>/dev/null || true
}

# stop_daemon NAME [TIMEOUT_S]: SIGTERM the recorded pid, wait up to TIMEOUT_S (default 30),
# then SIGKILL. Removes the pid file. Succeeds when nothing was running.
stop_daemon() {
  local name="$1" timeout_s="${2:-30}" pid deadline
  pid="$(read_pid "$name")"
  if ! is_running "$name"; then
    rm -f "$(pid_file "$name")"
    log "$name: not running"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$(( $(now_ms) + timeout_s * 1000 ))
  while pid_alive "$pid"; do
    if (( $(now_ms) > deadline )); then
      log "$name (pid $pid) still alive ${timeout_s}s after SIGTERM: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.2
      break
    fi
    sleep 0.1
  done
  rm -f "$(pid_file "$name")"
  log "$name: stopped (pid $pid)"
}

# status_line NAME ADDRESS: one line, exit 0 when running, 3 when not (LSB convention).
status_line() {
  local name="$1" addr="$2"
  if is_running "$name"; then
    printf '%-10s running  pid %-7s %s\n' "$name" "$(read_pid "$name")" "$addr"
  else
    printf '%-10s stopped  %-11s %s\n' "$name" "" "$addr"
    return 3
  fi
}

# apt_install PKG...: apt-get install; runs apt-get update first only when the install fails.
apt_install() {
  local sudo=()
  [[ "$(id -u)" == 0 ]] || sudo=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get install -y -q --no-install-recommends "$@" \
    || { "${sudo[@]}" apt-get update -q && "${sudo[@]}" apt-get install -y -q --no-install-recommends "$@"; }
}

# dispatch "$@": run {install|start|stop|status|restart} to do_<cmd> functions.
dispatch() {
  local cmd="${1:-}"
  case "$cmd" in
    install|start|stop|status) "do_$cmd" ;;
    restart) do_stop; do_start ;;
    *) echo "usage: $(basename "$0") {install|start|stop|restart|status}" >&2; exit 2 ;;
  esac
}
