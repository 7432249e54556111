// Opens N keep-alive connections to 127.0.0.1:PORT, sends one "GET PATH" on each, reads the whole
// (Content-Length framed) answer, and keeps every socket open. Prints "READY ok=<n> failed=<f>
// ms=<t>" once all are done, then holds them until SIGTERM or HOLD_S seconds (always bounded).
// usage: node idle-client.mjs N PORT PATH   (bench/run.mjs runs it; loopback only)
import { connect } from 'node:net';

const total = Number(process.argv[2]) || 10_000;
const port = Number(process.argv[3]) || 18080;
const path = process.argv[4] || '/';
const parallel = Number(process.env.CONCURRENCY) || 500;
const holdSeconds = Number(process.env.HOLD_S) || 60;
const head = Buffer.from(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUser-Agent: idle-client\r\n\r\n`);
const sockets = [];
let started = 0;
let ok = 0;
let failed = 0;
let inflight = 0;
let reported = false;
const t0 = Date.now();

function one() {
  started++;
  inflight++;
  const socket = connect({ host: '127.0.0.1', port });
  let text = '';
  let finished = false;
  const finish = (good) => {
    if (finished) return;
    finished = true;
    inflight--;
    if (good) ok++;
    else failed++;
    pump();
  };
  socket.setTimeout(30_000, () => {
    finish(false);
    socket.destroy();
  });
  socket.on('connect', () => socket.write(head));
  socket.on('data', (chunk) => {
    text += chunk.toString('latin1');
    const end = text.indexOf('\r\n\r\n');
    if (end < 0) return;
    const length = /content-length:\s*(\d+)/i.exec(text.slice(0, end));
    if (length && text.length - end - 4 >= Number(length[1])) {
      socket.setTimeout(0);
      const good = /^HTTP\/1\.1 200/.test(text);
      text = '';
      finish(good);
    }
  });
  socket.on('error', () => finish(false));
  socket.on('close', () => finish(false));
  sockets.push(socket);
}

function pump() {
  while (started < total && inflight < parallel) one();
  if (ok + failed === total && !reported) {
    reported = true;
    console.log(`READY ok=${ok} failed=${failed} ms=${Date.now() - t0}`);
    setTimeout(() => process.exit(0), holdSeconds * 1000);
  }
}
process.on('SIGTERM', () => process.exit(0));
setTimeout(() => {
  console.log(`TIMEOUT ok=${ok} failed=${failed}`);
  process.exit(1);
}, (holdSeconds + 120) * 1000).unref();
pump();
