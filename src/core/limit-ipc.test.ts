/**
 * The IPC store against the supervisor side over a real IPC channel: a forked child process
 * (this file's own child mode) runs IpcLimitStore, the parent answers with serveLimits.
 */
import assert from 'node:assert/strict';
import { fork } from 'node:child_process';
import { EventEmitter, once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { NodeBus, type IpcChannel } from './bus.js';
import { IpcLimitStore, serveLimits, type LimitReply, type LimitRequest } from './limit-ipc.js';
import { MemoryLimitStore } from './limit-store.js';

const CHILD = process.argv[2] === 'limit-ipc-child';

if (CHILD) {
  // The child: take 8 rate decisions, acquire 3 slots of max 2, release nothing, report, wait.
  const store = new IpcLimitStore(new NodeBus<LimitRequest, LimitReply>(process as IpcChannel));
  const check = { zone: 'r', key: 'ip', rate: 10_000, burst: 5_000, delay: 0 };
  const actions: string[] = [];
  for (let i = 0; i < 8; i++) actions.push((await store.take([check])).action);
  const slots = [await store.acquire('c', 'ip', 2), await store.acquire('c', 'ip', 2), await store.acquire('c', 'ip', 2)];
  process.send?.({ type: 'result', actions, slots, pending: store.pending });
} else {
  describe('IpcLimitStore ↔ serveLimits over a real IPC channel', () => {
    it('answers from the supervisor store, and a worker exit frees its slots', async () => {
      // A stopped clock: the outcomes must not depend on how fast IPC round trips are here.
      const store = new MemoryLimitStore({ now: () => 5_000 });
      const child = fork(fileURLToPath(import.meta.url), ['limit-ipc-child'], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      const detach = serveLimits(store, new NodeBus<LimitReply, LimitRequest>(child));
      try {
        type Result = { type: string; actions: string[]; slots: boolean[]; pending: number };
        const result = await new Promise<Result>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error('no result from the child in 20 s')), 20_000);
          child.on('message', (message: Result) => {
            if (message.type !== 'result') return;
            clearTimeout(timer);
            resolve(message);
          });
        });
        assert.deepEqual(result.actions, ['pass', 'delay', 'delay', 'delay', 'delay', 'delay', 'reject', 'reject']);
        assert.deepEqual(result.slots, [true, true, false]);
        assert.equal(result.pending, 0);
        assert.equal(store.held('c', 'ip'), 2, 'the supervisor store holds the worker\'s two slots');
        child.kill('SIGKILL');
        await once(child, 'exit');
        detach();
        assert.equal(store.held('c', 'ip'), 0, 'the dead worker\'s slots were given back');
        detach(); // idempotent
        assert.equal(store.held('c', 'ip'), 0);
      } finally {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }
    });

    it('a release for a slot the worker does not hold frees nothing', () => {
      const store = new MemoryLimitStore();
      store.acquire('c', 'k', 5);
      const channel = Object.assign(new EventEmitter(), { send: () => true, connected: true });
      const detach = serveLimits(store, new NodeBus<LimitReply, LimitRequest>(channel));
      channel.emit('message', { type: 'portico:limit:release', zone: 'c', key: 'k' });
      assert.equal(store.held('c', 'k'), 1);
      detach();
    });
  });
}
