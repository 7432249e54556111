#!/usr/bin/env bash
# Cache-hit throughput side by side in one run (interleaved rounds): `portico proxy --cache`
# (memory tier) against nginx `proxy_cache` serving the same cached answer, each one process
# (PORTICO_WORKERS=1, nginx worker_processes 1)
# pinned to CPU 0, wrk pinned to CPU 1 (as the shared bench/ scripts do). The origin (a small
# node:http server on CPU 1) answers "Hello, World!" with Cache-Control: max-age=3600; every
# measured request is a hit for both (checked before the rounds). Servers listen on loopback
# and are stopped by PID at the end.
#
#   bench/cache.sh [rounds=3] [seconds=8] [connections=64]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${1:-3}
SECONDS_PER_ROUND=${2:-8}
CONNS=${3:-64}
WORK=$(mktemp -d /tmp/portico-cache-bench.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$WORK/nginx/tmp" "$WORK/nginx/cache"
chmod -R 777 "$WORK"
free_port() { node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }

ORIGIN_PORT=$(free_port)
taskset -c 1 node -e "require('http').createServer((q,s)=>{s.writeHead(200,{'content-type':'text/plain','cache-control':'max-age=3600'});s.end('Hello, World!')}).listen($ORIGIN_PORT,'127.0.0.1')" &
PIDS+=($!)

NAMES=(); PORTS=()
PORT=$(free_port)
PORTICO_WORKERS=1 taskset -c 0 node "$ROOT/bin/portico" proxy "http://127.0.0.1:$ORIGIN_PORT" --host 127.0.0.1 --port "$PORT" --cache --no-access-log > "$WORK/portico.log" 2>&1 &
PIDS+=($!); NAMES+=(portico); PORTS+=("$PORT")

PORT=$(free_port)
cat > "$WORK/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_timeout 120s; keepalive_requests 1000000;
  client_body_temp_path $WORK/nginx/tmp; proxy_temp_path $WORK/nginx/tmp; fastcgi_temp_path $WORK/nginx/tmp; uwsgi_temp_path $WORK/nginx/tmp; scgi_temp_path $WORK/nginx/tmp;
  proxy_cache_path $WORK/nginx/cache levels=1:2 keys_zone=bench:10m max_size=1g;
  upstream origin { server 127.0.0.1:$ORIGIN_PORT; keepalive 32; }
  server {
    listen 127.0.0.1:$PORT;
    location / {
      proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_cache bench; proxy_cache_lock on;
      add_header Cache-Status "nginx; \$upstream_cache_status";
    }
  }
}
EOF
taskset -c 0 nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" > "$WORK/nginx/out.log" 2>&1 &
PIDS+=($!); NAMES+=(nginx-proxy_cache); PORTS+=("$PORT")

for i in "${!NAMES[@]}"; do
  for _ in $(seq 150); do curl -sf -o /dev/null "http://127.0.0.1:${PORTS[$i]}/hit" && break; sleep 0.2; done
  curl -sf -o /dev/null "http://127.0.0.1:${PORTS[$i]}/hit"
  status=$(curl -sf -D - -o /dev/null "http://127.0.0.1:${PORTS[$i]}/hit" | tr -d '\r' | awk -F': ' 'tolower($1)=="cache-status" {print $2}')
  case "$status" in *hit*|*HIT*) echo "${NAMES[$i]}: $status" ;; *) echo "${NAMES[$i]}: not a hit ($status)"; exit 1 ;; esac
done
echo "wrk -t1 -c$CONNS -d${SECONDS_PER_ROUND}s (CPU 1) on GET /hit, servers on CPU 0, $ROUNDS interleaved rounds"
declare -A RESULTS
for round in $(seq "$ROUNDS"); do
  for i in "${!NAMES[@]}"; do
    rps=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECONDS_PER_ROUND}s" "http://127.0.0.1:${PORTS[$i]}/hit" | awk '/Requests\/sec/ {print $2}')
    echo "round $round ${NAMES[$i]}: $rps req/s"
    RESULTS[${NAMES[$i]}]="${RESULTS[${NAMES[$i]}]:-} $rps"
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
BASE=$(echo "${RESULTS[nginx-proxy_cache]}" | median)
for name in "${NAMES[@]}"; do
  m=$(echo "${RESULTS[$name]}" | median)
  echo "median $name: $m req/s (ratio to nginx-proxy_cache $(awk -v a="$m" -v b="$BASE" 'BEGIN {printf "%.2f", a/b}'))"
done
