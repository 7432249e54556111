// Cost of one limit check (µs): the in-process MemoryLimitStore, and the IpcLimitStore an edge
// worker uses (a round trip to the supervisor over node's IPC channel), sequential and with 64
// checks in flight. docs/config.md "Access control and limits" quotes it. Run (after npm run build):
//   node bench/limit-store.mjs
// With REDIS_URL (e.g. redis://127.0.0.1:6379, a redis-server you started), also the Redis store
// of `state` (src/state/limits.ts): one EVALSHA per check (docs/performance.md, issue #17).
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { NodeBus } from '../dist/core/bus.js';
import { IpcLimitStore, serveLimits } from '../dist/core/limit-ipc.js';
import { MemoryLimitStore } from '../dist/core/limit-store.js';

const N = 20000;
const check = { zone: 'z', key: '127.0.0.1', rate: 1e9, burst: 1e9, delay: 1e9 };

if (process.env.LIMIT_BENCH_CHILD === '1') {
  const store = new IpcLimitStore(new NodeBus(process));
  for (let i = 0; i < 1000; i++) await store.take([check]);
  let t = performance.now();
  for (let i = 0; i < N; i++) await store.take([check]);
  const sequential = ((performance.now() - t) / N) * 1000;
  t = performance.now();
  for (let i = 0; i < N; i += 64) await Promise.all(Array.from({ length: 64 }, () => store.take([check])));
  const concurrent = ((performance.now() - t) / N) * 1000;
  process.send({ type: 'result', sequential, concurrent });
  process.disconnect();
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
  const detach = serveLimits(new MemoryLimitStore(), new NodeBus(child));
  child.on('message', (message) => {
    if (message?.type !== 'result') return;
    process.stdout.write(`ipc store take, one at a time: ${message.sequential.toFixed(1)} us per check\n`);
    process.stdout.write(`ipc store take, 64 in flight: ${message.concurrent.toFixed(1)} us per check\n`);
    detach();
    child.kill();
    if (process.env.REDIS_URL) void redisStore(process.env.REDIS_URL);
  });
}

async function redisStore(url) {
  const { SharedRedis } = await import('../dist/state/redis.js');
  const { SharedLimitStore } = await import('../dist/state/limits.js');
  const redis = new SharedRedis({ redis: { url, prefix: 'bench:', timeout: 1000 }, onRedisDown: 'open', leaseTtl: 30000, cacheEntryMax: 0 }, 'bench', 'nothing is measured');
  while (!redis.up) await new Promise((resolve) => setTimeout(resolve, 20));
  const store = new SharedLimitStore(redis);
  const n = 5000;
  for (let i = 0; i < 500; i++) await store.take([check]);
  let t = performance.now();
  for (let i = 0; i < n; i++) await store.take([check]);
  process.stdout.write(`redis store take, one at a time: ${(((performance.now() - t) / n) * 1000).toFixed(1)} us per check\n`);
  t = performance.now();
  for (let i = 0; i < n * 4; i += 64) await Promise.all(Array.from({ length: 64 }, () => store.take([check])));
  process.stdout.write(`redis store take, 64 in flight: ${(((performance.now() - t) / (n * 4)) * 1000).toFixed(1)} us per check\n`);
  if (store.fallbacks > 0) process.stdout.write(`(${store.fallbacks} checks fell back: Redis was slow or away)\n`);
  await store.close();
  await redis.close();
}
