/**
 * Bounded concurrency through the forward proxy: 200 CONNECT tunnels open at once, each carrying
 * 1 MiB to a local TCP echo server and the same 1 MiB back, every byte checked (SHA-256 both
 * ways). Bounded in count (200) and time (the whole test has 180 s); it stops by itself. Run
 * alone (scripts/test.mjs ALONE): it loads both cores.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { echo, openTunnel, readToEnd, startForward, startTcpServer, type RunningForward, type TcpServer } from '../helpers/forward.js';
import { sleep } from '../helpers/app.js';
import { rssBytes } from '../helpers/upstreams.js';

const TUNNELS = 200;
const SIZE = 1024 * 1024;
const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

describe('forward proxy under load', () => {
  let proxy: RunningForward;
  let server: TcpServer;
  before(async () => {
    server = await startTcpServer(echo);
    proxy = await startForward(['--port', '0', '--allow-dest', '127.0.0.1', '--connect-port', String(server.port), '--no-access-log']);
  });
  after(async () => {
    await proxy?.stop();
    await server?.close();
  });

  it(`${TUNNELS} simultaneous tunnels each move 1 MiB both ways intact`, { timeout: 180_000 }, async (t) => {
    let peakRss = 0;
    const sampler = setInterval(() => (peakRss = Math.max(peakRss, rssBytes(proxy.proc.pid) ?? 0)), 100);
    try {
      // Every tunnel is open before any data moves: they are simultaneous, not sequential.
      const tunnels = await Promise.all(Array.from({ length: TUNNELS }, () => openTunnel(proxy.port, `127.0.0.1:${server.port}`)));
      assert.deepEqual(
        tunnels.map((tunnel) => tunnel.status),
        tunnels.map(() => 200),
      );
      // The proxy answers 200 once its connection to the destination is up; the echo server (in
      // this process) may not have run its 'connection' callbacks yet, so wait for them, bounded.
      const deadline = Date.now() + 10_000;
      while (server.connections() < TUNNELS && Date.now() < deadline) await sleep(20);
      assert.equal(server.connections(), TUNNELS);
      const results = await Promise.all(
        tunnels.map(async (tunnel) => {
          const data = randomBytes(SIZE);
          const back = readToEnd(tunnel.socket, 150_000, tunnel.rest);
          tunnel.socket.end(data);
          const received = await back;
          tunnel.socket.destroy();
          return { sent: sha256(data), received: sha256(received), length: received.length };
        }),
      );
      const broken = results.filter((r) => r.sent !== r.received || r.length !== SIZE);
      assert.equal(broken.length, 0, `${broken.length} tunnels corrupted or cut: ${JSON.stringify(broken.slice(0, 3))}`);
    } finally {
      clearInterval(sampler);
    }
    t.diagnostic(`proxy peak RSS ${(peakRss / 1024 / 1024).toFixed(0)} MiB for ${TUNNELS} tunnels x ${SIZE / 1024 / 1024} MiB each way`);
  });
});
