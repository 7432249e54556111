#!/usr/bin/env bash
# Compressed static responses, side by side in one run (interleaved rounds): Portico with
# `encode: true` (a hot-cache file is compressed once per coding and kept), nginx `gzip on` at the
# same level (compresses every response), and optionally an older Portico build (OLD=path to its
# dist/cli/main.js) to compare against. The page is this repository's README.md (about 40 KB of
# text). Servers listen on loopback and are stopped by PID at the end.
#
#   bench/compress.sh [rounds=3] [seconds=8]
#   OLD=/tmp/old-dist/cli/main.js bench/compress.sh 3 8
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${1:-3}
SECONDS_PER_ROUND=${2:-8}
WORK=$(mktemp -d /tmp/portico-compress-bench.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$WORK/site" "$WORK/nginx/tmp"
# nginx's workers run as an unprivileged user when started by root: they must read the page.
chmod 755 "$WORK" "$WORK/site"
cp "$ROOT/README.md" "$WORK/site/page.html"
free_port() { node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }

start_portico() { # name main.js
  local port; port=$(free_port)
  printf '{ "log": { "level": "warn", "access": false }, "servers": [{ "listen": "127.0.0.1:%s", "encode": { "level": { "gzip": 6 } }, "static": { "root": "%s/site" } }] }\n' "$port" "$WORK" > "$WORK/$1.json"
  node "$2" up --config "$WORK/$1.json" > "$WORK/$1.log" 2>&1 &
  PIDS+=($!)
  NAMES+=("$1"); PORTS+=("$port")
}
NAMES=(); PORTS=()
start_portico portico "$ROOT/dist/cli/main.js"
if [ -n "${OLD:-}" ]; then start_portico portico-old "$OLD"; fi
NGINX_PORT=$(free_port)
cat > "$WORK/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  include /etc/nginx/mime.types;
  client_body_temp_path $WORK/nginx/tmp; proxy_temp_path $WORK/nginx/tmp; fastcgi_temp_path $WORK/nginx/tmp; uwsgi_temp_path $WORK/nginx/tmp; scgi_temp_path $WORK/nginx/tmp;
  gzip on; gzip_comp_level 6; gzip_vary on; gzip_min_length 512;
  server { listen 127.0.0.1:$NGINX_PORT; root $WORK/site; }
}
EOF
nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" > "$WORK/nginx/out.log" 2>&1 &
PIDS+=($!)
NAMES+=(nginx-gzip6); PORTS+=("$NGINX_PORT")
for i in "${!NAMES[@]}"; do
  # Ready when it answers (up to 30 s on a loaded machine).
  for _ in $(seq 150); do curl -sf -o /dev/null "http://127.0.0.1:${PORTS[$i]}/page.html" && break; sleep 0.2; done
  # Every server must answer gzip with the same bytes once decompressed.
  curl -s -H "Accept-Encoding: gzip" -o "$WORK/check.gz" "http://127.0.0.1:${PORTS[$i]}/page.html"
  gunzip -c < "$WORK/check.gz" | cmp - "$WORK/site/page.html" || { echo "${NAMES[$i]}: not the page after gunzip"; head -c 300 "$WORK/check.gz"; exit 1; }
done
echo "page: $(wc -c < "$WORK/site/page.html") bytes; wrk -t1 -c32 -d${SECONDS_PER_ROUND}s -H 'Accept-Encoding: gzip', $ROUNDS interleaved rounds"
declare -A RESULTS
for round in $(seq "$ROUNDS"); do
  for i in "${!NAMES[@]}"; do
    rps=$(wrk -t1 -c32 -d"${SECONDS_PER_ROUND}s" -H 'Accept-Encoding: gzip' "http://127.0.0.1:${PORTS[$i]}/page.html" | awk '/Requests\/sec/ {print $2}')
    echo "round $round ${NAMES[$i]}: $rps req/s"
    RESULTS[${NAMES[$i]}]="${RESULTS[${NAMES[$i]}]:-} $rps"
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
NGINX_MEDIAN=$(echo "${RESULTS[nginx-gzip6]}" | median)
for name in "${NAMES[@]}"; do
  m=$(echo "${RESULTS[$name]}" | median)
  echo "median $name: $m req/s (ratio to nginx-gzip6 $(awk -v a="$m" -v b="$NGINX_MEDIAN" 'BEGIN {printf "%.2f", a/b}'))"
done
