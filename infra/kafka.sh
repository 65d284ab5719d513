#!/usr/bin/env bash
# Apache Kafka 3.9.1, single-node KRaft (broker + controller in one JVM), as a background process.
#
#   infra/kafka.sh install   jars from Maven Central into $FACESTREAM_STATE/kafka/libs (skipped when present)
#   infra/kafka.sh start     write config, format storage once, start, wait for a metadata answer
#   infra/kafka.sh stop      SIGTERM (controlled shutdown), SIGKILL after 60 s
#   infra/kafka.sh status
#
# Env: FACESTREAM_STATE, FACESTREAM_KAFKA_PORT (19092), FACESTREAM_KAFKA_CONTROLLER_PORT (19093),
#      FACESTREAM_KAFKA_HEAP (-Xms256m -Xmx512m), FACESTREAM_KAFKA_LIBS ($FACESTREAM_STATE/kafka/libs),
#      JAVA (java), MVN (mvn).
LOG_PREFIX=kafka
# shellcheck source=infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NAME=kafka
KAFKA_VERSION=3.9.1
DIR="$(state_dir "$NAME")"
LIBS="${FACESTREAM_KAFKA_LIBS:-$DIR/libs}"   # a second broker may share the jars
DATA="$DIR/data"
POM="$INFRA_DIR/kafka/pom.xml"
JAVA="${JAVA:-java}"
MVN="${MVN:-mvn}"
BROKER="$FACESTREAM_HOST:$FACESTREAM_KAFKA_PORT"
HEAP="${FACESTREAM_KAFKA_HEAP:--Xms256m -Xmx512m}"
# Java flags as in Kafka's own kafka-server-start.sh / kafka-run-class.sh.
JVM_OPTS=(-server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35
          -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true)

pom_digest() { sha256sum "$POM" | cut -c1-16; }
installed() { [[ -f "$LIBS/.installed" && "$(cat "$LIBS/.installed")" == "$(pom_digest)" ]]; }

ensure_java_mvn() {
  local need=()
  command -v "$JAVA" >/dev/null || need+=(openjdk-17-jre-headless)
  command -v "$MVN" >/dev/null || need+=(maven)
  if ((${#need[@]})); then log "installing ${need[*]}"; apt_install "${need[@]}"; fi
}

do_install() {
  if installed; then log "Kafka $KAFKA_VERSION jars already in $LIBS"; return 0; fi
  ensure_java_mvn
  command -v "$MVN" >/dev/null || die "maven missing"
  local tmp="$DIR/libs.tmp" t0; t0=$(now_ms)
  rm -rf "$tmp"
  local args=(-q -B -f "$POM" dependency:copy-dependencies "-Dkafka.libs.dir=$tmp"
              "-Dkafka.build.dir=$DIR/build")
  # Offline first (works from a filled ~/.m2 with no network), then from Maven Central.
  if ! "$MVN" -o "${args[@]}" >"$DIR/mvn.log" 2>&1; then
    log "fetching Kafka $KAFKA_VERSION jars from Maven Central"
    "$MVN" "${args[@]}" >"$DIR/mvn.log" 2>&1 || { tail -n 40 "$DIR/mvn.log" >&2; die "mvn failed (log: $DIR/mvn.log)"; }
  fi
  ls "$tmp"/kafka_2.13-"$KAFKA_VERSION".jar >/dev/null || die "kafka_2.13-$KAFKA_VERSION.jar missing after mvn"
  rm -rf "$LIBS" "$DIR/build"; mv "$tmp" "$LIBS"
  pom_digest >"$LIBS/.installed"
  log "installed $(find "$LIBS" -name '*.jar' | wc -l) jars ($(du -sh "$LIBS" | cut -f1)) into $LIBS in $(( $(now_ms) - t0 )) ms"
}

write_config() {
  mkdir -p "$DATA" "$DIR/logs"
  cat >"$DIR/server.properties" <<EOF
# Written by infra/kafka.sh on every start: edit the script, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$FACESTREAM_HOST:$FACESTREAM_KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$FACESTREAM_HOST:$FACESTREAM_KAFKA_PORT,CONTROLLER://$FACESTREAM_HOST:$FACESTREAM_KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$FACESTREAM_HOST:$FACESTREAM_KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DATA

# one broker: replication 1 everywhere
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
# fewer internal partitions than the default 50: quicker first group join on 2 cores
offsets.topic.num.partitions=8
transaction.state.log.num.partitions=8

num.partitions=4
auto.create.topics.enable=true
delete.topic.enable=true
group.initial.rebalance.delay.ms=0
# let tests use short consumer session timeouts (broker default floor is 6000)
group.min.session.timeout.ms=1000

# image payloads: 16 MiB records/batches
message.max.bytes=16777216
replica.fetch.max.bytes=16777216
socket.request.max.bytes=104857600

# compacted topics (Faust changelogs, registries); dedupe buffer sized for a 512 MiB heap
log.cleaner.enable=true
log.cleaner.threads=1
log.cleaner.dedupe.buffer.size=33554432
log.retention.hours=168
log.segment.bytes=268435456

# after an unclean exit (SIGKILL) the restarted broker must wait for its old registration to
# expire before it is unfenced: 4 s instead of the default 9 s (heartbeats are local anyway)
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=4000

# a 2-core machine
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
EOF
  {
    echo "# Written by infra/kafka.sh. reload4j (log4j 1.2 API) via slf4j-reload4j."
    echo "log4j.rootLogger=INFO, server"
    # appender, file, size, backups: the broker's log and two quieter ones beside it
    for spec in "server server 50MB 4" "stateChange state-change 20MB 2" "cleaner log-cleaner 20MB 2"; do
      read -r name file size backups <<<"$spec"
      echo "log4j.appender.$name=org.apache.log4j.RollingFileAppender"
      echo "log4j.appender.$name.File=$DIR/logs/$file.log"
      echo "log4j.appender.$name.MaxFileSize=$size"
      echo "log4j.appender.$name.MaxBackupIndex=$backups"
      echo "log4j.appender.$name.layout=org.apache.log4j.PatternLayout"
      echo "log4j.appender.$name.layout.ConversionPattern=[%d] %p %m (%c)%n"
    done
    cat <<'EOF'
log4j.logger.org.apache.kafka=INFO
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=INFO, stateChange
log4j.additivity.state.change.logger=false
log4j.logger.kafka.log.LogCleaner=INFO, cleaner
log4j.additivity.kafka.log.LogCleaner=false
EOF
  } >"$DIR/log4j.properties"
  cat >"$DIR/tools-log4j.properties" <<'EOF'
log4j.rootLogger=WARN, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
EOF
}

kafka_tool() {
  # shellcheck disable=SC2086
  "$JAVA" -Xmx256m -XX:TieredStopAtLevel=1 -Dlog4j.configuration="file:$DIR/tools-log4j.properties" \
    -cp "$LIBS/*" "$@"
}

format_once() {
  [[ -f "$DATA/meta.properties" ]] && return 0
  local cid
  if [[ -s "$DIR/cluster.id" ]]; then cid="$(cat "$DIR/cluster.id")"
  else cid="$(kafka_tool kafka.tools.StorageTool random-uuid | tail -n1)"; printf '%s\n' "$cid" >"$DIR/cluster.id"
  fi
  log "formatting $DATA (cluster id $cid)"
  # Static quorum (controller.quorum.voters): plain format, no --standalone.
  kafka_tool kafka.tools.StorageTool format -t "$cid" -c "$DIR/server.properties" \
    >>"$DIR/logs/storage-format.log" 2>&1 || { tail "$DIR/logs/storage-format.log" >&2; die "storage format failed"; }
}

# ready: the broker answers a Metadata request with itself as a live broker and a controller.
ready() {
  if command -v python3 >/dev/null; then
    python3 "$INFRA_DIR/kafka_probe.py" "$BROKER" --timeout 2
  else
    kafka_tool kafka.admin.BrokerApiVersionsCommand --bootstrap-server "$BROKER" | grep -q "id: 1"
  fi
}

do_start() {
  local t0; t0=$(now_ms)
  if is_running "$NAME"; then
    log "already running (pid $(read_pid "$NAME")) on $BROKER"
    wait_until "$NAME" 90 ready
    return 0
  fi
  installed || die "Kafka jars not installed: run infra/kafka.sh install"
  command -v "$JAVA" >/dev/null || die "java not found (install: infra/kafka.sh install)"
  ensure_port_free "$NAME" "$FACESTREAM_KAFKA_PORT" "$FACESTREAM_KAFKA_CONTROLLER_PORT"
  write_config
  format_once
  # shellcheck disable=SC2086
  start_daemon "$NAME" "$JAVA" $HEAP "${JVM_OPTS[@]}" \
    -Dlog4j.configuration="file:$DIR/log4j.properties" -Dkafka.logs.dir="$DIR/logs" \
    -cp "$LIBS/*" kafka.Kafka "$DIR/server.properties"
  wait_until "$NAME" 90 ready || die "Kafka did not become ready (logs: $DIR/logs/server.log)"
  log "started (pid $(read_pid "$NAME")) on $BROKER in $(( $(now_ms) - t0 )) ms"
}

do_stop() { stop_daemon "$NAME" 60; }
do_status() { status_line "$NAME" "kafka://$BROKER (controller $FACESTREAM_HOST:$FACESTREAM_KAFKA_CONTROLLER_PORT)"; }

dispatch "$@"
