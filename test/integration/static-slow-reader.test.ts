/**
 * A large static file to a client that stops reading and starts again (#20 item 1). Portico
 * reads a file 64 KiB at a time into four 16 KiB buffers and, when the client leaves one waiting
 * in the socket, lets the others go and reads their bytes again later (handlers/static/send-file.ts).
 * That path only runs once the kernel's buffers are full, so the client here pauses long enough
 * for them to fill, several times; every byte must still arrive, in order, for whole files and
 * for ranges that start and end off a buffer's edge, and a pipelined second request must follow.
 * Real portico, raw sockets on loopback, bounded waits.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort, startWithConfig, tempDir, type RunningPortico } from '../helpers/portico.js';

/** Larger than what the kernel buffers of both sides hold on loopback (4 MiB send, 6 MiB receive at most). */
const FILE_BYTES = 24 * 1024 * 1024 + 777;

const sha = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

interface Answer {
  head: string;
  body: Buffer;
}

/**
 * Sends `request` on a raw socket and reads `count` responses with Content-Length bodies,
 * pausing for `pauseMs` every `pauseEvery` bytes. Bounded by 60 s.
 */
function readPaused(port: number, request: string, count: number, pauseEvery: number, pauseMs: number): Promise<Answer[]> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1' });
    const answers: Answer[] = [];
    let pending: Buffer = Buffer.alloc(0);
    let sinceLastPause = 0;
    const bound = setTimeout(() => {
      socket.destroy();
      reject(new Error(`not all of ${count} answers within 60 s (got ${answers.length}, ${pending.length} bytes pending)`));
    }, 60_000);
    const parse = (): void => {
      for (;;) {
        const headEnd = pending.indexOf('\r\n\r\n');
        if (headEnd === -1) return;
        const head = pending.subarray(0, headEnd).toString('latin1');
        const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? NaN);
        if (Number.isNaN(length)) throw new Error(`an answer without Content-Length:\n${head}`);
        if (pending.length < headEnd + 4 + length) return;
        answers.push({ head, body: Buffer.from(pending.subarray(headEnd + 4, headEnd + 4 + length)) });
        pending = pending.subarray(headEnd + 4 + length);
        if (answers.length === count) {
          clearTimeout(bound);
          socket.destroy();
          resolve(answers);
          return;
        }
      }
    };
    socket.on('connect', () => socket.write(request));
    socket.on('data', (chunk: Buffer) => {
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      sinceLastPause += chunk.length;
      try {
        parse();
      } catch (error) {
        clearTimeout(bound);
        socket.destroy();
        reject(error as Error);
        return;
      }
      if (sinceLastPause >= pauseEvery) {
        sinceLastPause = 0;
        socket.pause();
        setTimeout(() => socket.resume(), pauseMs);
      }
    });
    socket.on('error', (error) => {
      clearTimeout(bound);
      reject(error);
    });
    socket.on('end', () => {
      clearTimeout(bound);
      if (answers.length < count) reject(new Error(`the connection ended after ${answers.length} of ${count} answers`));
    });
  });
}

describe('a large static file to a client that pauses (#20)', () => {
  const dir = tempDir();
  const file = randomBytes(FILE_BYTES);
  let portico: RunningPortico;
  before(async () => {
    mkdirSync(join(dir.path, 'public'));
    writeFileSync(join(dir.path, 'public', 'big.bin'), file);
    writeFileSync(join(dir.path, 'public', 'small.txt'), 'after the big one\n');
    portico = await startWithConfig(dir.path, {
      workers: 1,
      log: { access: false },
      servers: [{ listen: `127.0.0.1:${await freePort()}`, static: { root: join(dir.path, 'public') } }],
    });
  });
  after(async () => {
    await portico?.stop();
    dir.remove();
  });

  it('the whole file arrives intact through several stalls, and a pipelined request follows', async () => {
    const request = 'GET /big.bin HTTP/1.1\r\nHost: a.test\r\n\r\nGET /small.txt HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n';
    // Pause 400 ms after every 6 MiB: by then Portico's writes have stalled on full kernel buffers.
    const [big, small] = await readPaused(portico.port, request, 2, 6 * 1024 * 1024, 400);
    assert.match(big?.head ?? '', /^HTTP\/1\.1 200 /);
    assert.equal(big?.body.length, FILE_BYTES);
    assert.equal(sha(big?.body ?? Buffer.alloc(0)), sha(file), 'the bytes arrived as they are in the file');
    assert.equal(small?.body.toString(), 'after the big one\n');
  });

  it('ranges off the buffers’ edges arrive intact through stalls', async () => {
    for (const [start, end] of [
      [1, FILE_BYTES - 2],
      [16 * 1024 - 1, 16 * 1024 * 1024 + 5],
      [FILE_BYTES - 70_000, FILE_BYTES - 1],
    ] as const) {
      const request = `GET /big.bin HTTP/1.1\r\nHost: a.test\r\nRange: bytes=${start}-${end}\r\nConnection: close\r\n\r\n`;
      const [answer] = await readPaused(portico.port, request, 1, 5 * 1024 * 1024, 300);
      assert.match(answer?.head ?? '', /^HTTP\/1\.1 206 /);
      assert.match(answer?.head ?? '', new RegExp(`content-range: bytes ${start}-${end}/${FILE_BYTES}`, 'i'));
      assert.equal(sha(answer?.body ?? Buffer.alloc(0)), sha(file.subarray(start, end + 1)), `bytes ${start}-${end}`);
    }
  });
});
