#!/usr/bin/env bash
# The daemon's benchmarks (docs/performance.md, "Daemon"): wrk against a real `strowger serve`.
#
#   bench/serve_bench.sh BUILD_DIR [post|get|sqlite|idle|startup|sse|all]
#
# The daemon is pinned to CPU 0 and wrk (or the SSE client) to CPU 1, so "on one core" means
# what it says. Every run uses a fresh directory under /tmp.
set -euo pipefail

build=${1:?usage: serve_bench.sh BUILD_DIR [what]}
what=${2:-all}
strowger=$(realpath "$build/src/app/strowger")
sse_bench=$(realpath "$build/bench/strowger_serve_bench")
here=$(cd "$(dirname "$0")" && pwd)
duration=${DURATION:-10s}
connections=${CONNECTIONS:-64}

dir=$(mktemp -d /tmp/strowger-serve-bench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$dir"' EXIT
export HOME=$dir XDG_CONFIG_HOME=$dir/config XDG_STATE_HOME=$dir/state
mkdir -p "$dir/workflows"
cat > "$dir/workflows/replies.txt" <<'EOF'
default: "done"
EOF
cat > "$dir/workflows/instant.yaml" <<EOF
name: instant
agents: {bot: {model: "scripted:$dir/workflows/replies.txt"}}
steps:
  - {name: only, agent_name: bot, prompt: "Do {{input}}"}
EOF
cat > "$dir/workflows/w3.yaml" <<EOF
name: w3
agents: {bot: {model: "scripted:$dir/workflows/slow.txt"}}
steps:
  - {name: one, agent_name: bot, prompt: "One {{input}}"}
  - {name: two, agent_name: bot, prompt: "Two {{input}}"}
  - {name: three, agent_name: bot, prompt: "Three {{input}}"}
EOF
cat > "$dir/workflows/slow.txt" <<'EOF'
latency_ms: 1000
default: "done"
EOF

pid=
port=
token=
start() {  # start STORE_URL [extra args...]
  local store=$1
  shift
  rm -f "$dir/serve.err"
  taskset -c 0 "$strowger" serve --listen 127.0.0.1:0 --workflows "$dir/workflows" \
    --store "$store" --no-stream-deltas "$@" > "$dir/serve.out" 2> "$dir/serve.err" &
  pid=$!
  for _ in $(seq 1 500); do
    if grep -q "serving on" "$dir/serve.err" 2>/dev/null; then break; fi
    sleep 0.02
  done
  port=$(sed -n 's/.*serving on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$dir/serve.err")
  token=$(cat "$dir/config/strowger/token")
}
stop() {
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
metric() {  # metric NAME_WITH_LABELS
  curl -s -H "Authorization: Bearer $token" "http://127.0.0.1:$port/metrics" |
    awk -v name="$1" '$1 == name {print $2}'
}
now() { date +%s.%N; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }  # the daemon's user + system time
cpu_per() {  # cpu_per TICKS COUNT: the daemon's CPU per item (µs) and what one core would do
  local us
  us=$(echo "$1 * 1000000 / $(getconf CLK_TCK) / $2" | bc -l)
  printf "daemon CPU %.1f µs each: %.0f/s on one whole core" "$us" "$(echo "1000000 / $us" | bc -l)"
}
drained() {  # waits until no run is executing in the daemon
  until [ "$(metric strowger_runs_executing)" = 0 ]; do sleep 0.05; done
}
post() {  # post STORE_URL LABEL
  start "$1"
  local before after t0 t1
  before=$(metric 'strowger_runs_total{status="completed"}')
  echo "== POST /api/runs, one-step instant workflow, $2 (wrk -t1 -c$connections -d$duration)"
  t0=$(now)
  c0=$(cpu_ticks)
  TOKEN=$token WORKFLOW=instant taskset -c 1 wrk -t1 -c"$connections" -d"$duration" \
    -s "$here/wrk/post_run.lua" "http://127.0.0.1:$port" | sed -n '/Requests\/sec/p;/Latency /p;/requests in/p;/Non-2xx/p'
  drained
  t1=$(now)
  c1=$(cpu_ticks)
  after=$(metric 'strowger_runs_total{status="completed"}')
  echo "completed runs: $((after - before)) in $(printf %.2f "$(echo "$t1 - $t0" | bc)") s:" \
    "$(echo "($after - $before) / ($t1 - $t0)" | bc) runs/s created and completed;" \
    "$(cpu_per $((c1 - c0)) $((after - before)));" \
    "answers: $(metric 'strowger_http_requests_total{route="/api/runs",method="POST",status="202"}') x 202"
  stop
}

case $what in
  post|all) post memory: "in memory" ;;&
  sqlite|all) post "sqlite:$dir/runs.db" "on SQLite" ;;&
  get|all)
    start memory:
    run=$(curl -s -H "Authorization: Bearer $token" -X POST "http://127.0.0.1:$port/api/runs" \
      -d '{"workflow":"instant","input":"x"}' | sed -n 's/.*"run_id":"\([^"]*\)".*/\1/p')
    curl -s -o /dev/null -H "Authorization: Bearer $token" \
      "http://127.0.0.1:$port/api/runs/$run/wait?timeout_ms=10000"
    echo "== GET /api/runs/$run (wrk -t1 -c$connections -d$duration)"
    c0=$(cpu_ticks)
    TOKEN=$token taskset -c 1 wrk -t1 -c"$connections" -d"$duration" -s "$here/wrk/get.lua" \
      "http://127.0.0.1:$port/api/runs/$run" | tee "$dir/wrk.out" | sed -n '/Requests\/sec/p;/Latency /p;/Non-2xx/p'
    c1=$(cpu_ticks)
    echo "$(cpu_per $((c1 - c0)) "$(awk '/requests in/ {print $1}' "$dir/wrk.out")")"
    stop ;;&
  idle|all)
    start "sqlite:$dir/idle.db"
    sleep 1
    echo "== idle RSS: $(awk '/VmRSS/ {print $2, $3}' /proc/$pid/status)"
    taskset -c 1 "$sse_bench" idle --port "$port" --token "$token" --pid "$pid" --subscribers 1000
    stop ;;&
  sse|all)
    start memory:
    echo "== 1,000 event streams following runs among 10,000 W3-like runs (3 steps of 1 s)"
    taskset -c 1 "$sse_bench" sse --port "$port" --token "$token" --workflow w3 --runs 10000 \
      --subscribers 1000
    echo "daemon RSS at the end: $(awk '/VmRSS/ {print $2, $3}' /proc/$pid/status)"
    stop ;;&
  startup|all)
    runs=${STARTUP_RUNS:-100000}
    db="$dir/startup.db"
    start "sqlite:$db"
    echo "== populating $runs finished runs on SQLite"
    while [ "$(metric 'strowger_runs_total{status="completed"}')" -lt "$runs" ]; do
      TOKEN=$token WORKFLOW=instant taskset -c 1 wrk -t1 -c"$connections" -d5s \
        -s "$here/wrk/post_run.lua" "http://127.0.0.1:$port" > /dev/null
    done
    stop
    echo "stored runs: $(sqlite3 "$db" 'SELECT count(*) FROM runs')"
    # The same start-up on an empty store, for comparison: what does not depend on stored runs.
    for store in "sqlite:$db" "sqlite:$dir/empty.db"; do
      for attempt in 1 2 3; do
        t0=$(now)
        start "$store"
        until curl -sf "http://127.0.0.1:$port/readyz" > /dev/null; do sleep 0.005; done
        t1=$(now)
        echo "start-up to ready, $store: $(printf %.3f "$(echo "$t1 - $t0" | bc)") s; daemon CPU" \
          "$(echo "$(cpu_ticks) * 1000 / $(getconf CLK_TCK)" | bc) ms; RSS $(awk '/VmRSS/ {print $2, $3}' /proc/$pid/status)"
        stop
      done
    done ;;
esac
