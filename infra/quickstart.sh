#!/usr/bin/env bash
# README command 1: on a fresh machine, set everything up and run the main job end to end.
#   installs the project, starts Kafka, pulls the models, starts a worker (all stages, results
#   in embedded ClickHouse = chDB), enrolls five people from dlib's example photos, sends 62 real
#   photos through Kafka, prints each result, stops the worker and shows what was stored.
LOG_PREFIX=quickstart
# shellcheck source=infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

bash infra/python.sh dev,models
bash infra/kafka.sh install
bash infra/kafka.sh start
.venv/bin/facestream models pull
testdata="$(bash infra/testdata.sh | tail -n1)"

mkdir -p "$FACESTREAM_STATE/logs"
worker_log="$FACESTREAM_STATE/logs/quickstart-worker.log"
log "starting a worker (log: $worker_log)"
setsid .venv/bin/facestream worker >"$worker_log" 2>&1 &
worker=$!
stop_worker() {
  if kill -0 "$worker" 2>/dev/null; then
    kill -TERM "$worker"
    for _ in $(seq 1 60); do kill -0 "$worker" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$worker" 2>/dev/null || true
  fi
}
trap stop_worker EXIT

.venv/bin/facestream demo --testdata "$testdata"

# The worker owns the embedded ClickHouse folder while it runs: let it store the last batch,
# stop it, then read what it stored.
sleep 3
stop_worker
trap - EXIT
chdb="$FACESTREAM_STATE/chdb"
echo
echo "Stored in ClickHouse (embedded chDB at $chdb), database facestream:"
.venv/bin/facestream db query \
  "SELECT status, count() AS events, sum(face_count) AS faces FROM facestream.events FINAL GROUP BY status ORDER BY status"
.venv/bin/facestream db query \
  "SELECT 'faces', count() FROM facestream.faces FINAL UNION ALL SELECT 'descriptors', count() FROM facestream.descriptors FINAL"
cat <<TXT

Query it yourself:  .venv/bin/facestream db query "SELECT * FROM facestream.events FINAL LIMIT 5"
Kafka topics:       facestream.{images,detections,liveness,descriptors,events,faces,samples,dead_letters}
                    on 127.0.0.1:$FACESTREAM_KAFKA_PORT (stop it with: bash infra/stack.sh stop)
Worker log:         $worker_log
TXT
