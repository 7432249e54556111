// Cost of one limit check (µs): the in-process MemoryLimitStore, and the IpcLimitStore an edge
// worker uses (a round trip to the supervisor over node's IPC channel), sequential and with 64
// checks in flight. docs/config.md "Access control and limits" quotes it. Run (after npm run build):
//   node bench/limit-store.mjs
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { IpcLimitStore, serveLimits } from '../dist/core/limit-ipc.js';
import { MemoryLimitStore } from '../dist/core/limit-store.js';

const N = 20000;
const check = { zone: 'z', key: '127.0.0.1', rate: 1e9, burst: 1e9, delay: 1e9 };

if (process.env.LIMIT_BENCH_CHILD === '1') {
  const store = new IpcLimitStore(process);
  for (let i = 0; i < 1000; i++) await store.take([check]);
  let t = performance.now();
  for (let i = 0; i < N; i++) await store.take([check]);
  const sequential = ((performance.now() - t) / N) * 1000;
  t = performance.now();
  for (let i = 0; i < N; i += 64) await Promise.all(Array.from({ length: 64 }, () => store.take([check])));
  const concurrent = ((performance.now() - t) / N) * 1000;
  process.send({ type: 'result', sequential, concurrent });
} else {
  const memory = new MemoryLimitStore();
  for (let i = 0; i < 10000; i++) memory.take([check]);
  let t = performance.now();
  for (let i = 0; i < N * 10; i++) memory.take([check]);
  process.stdout.write(`memory store take: ${(((performance.now() - t) / (N * 10)) * 1000).toFixed(2)} us\n`);
  t = performance.now();
  for (let i = 0; i < N * 10; i++) {
    memory.acquire('c', '127.0.0.1', 10);
    memory.release('c', '127.0.0.1');
  }
  process.stdout.write(`memory store acquire+release: ${(((performance.now() - t) / (N * 10)) * 1000).toFixed(2)} us\n`);
  const child = fork(fileURLToPath(import.meta.url), [], { env: { ...process.env, LIMIT_BENCH_CHILD: '1' } });
  const detach = serveLimits(new MemoryLimitStore(), child);
  child.on('message', (message) => {
    if (message.type !== 'result') return;
    process.stdout.write(`ipc store take, one at a time: ${message.sequential.toFixed(1)} us per check\n`);
    process.stdout.write(`ipc store take, 64 in flight: ${message.concurrent.toFixed(1)} us per check\n`);
    detach();
    child.kill();
  });
}
