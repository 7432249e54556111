/**
 * `http.sendTimeout` (nginx `send_timeout`, #20 item 1) on the wire: a raw client asks for a
 * 64 MiB file and stops reading. Once the kernel buffers on both sides are full, Portico's writes
 * stall; after `sendTimeout` (1 s here) it closes the connection, so the client, reading again
 * later, gets less than the file and an end. A client that pauses for less than the timeout gets
 * the whole file. Real portico, loopback, bounded waits.
 */
import assert from 'node:assert/strict';
import { mkdirSync, openSync, closeSync, ftruncateSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort, startWithConfig, tempDir, type RunningPortico } from '../helpers/portico.js';

const FILE_BYTES = 64 * 1024 * 1024;

/** GET the file, stop reading for `pauseMs`, then read to the end; resolves with the bytes after the head. */
function download(port: number, pauseMs: number): Promise<{ bodyBytes: number; ended: boolean }> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    let received = 0;
    let headEnd = -1;
    let head = '';
    const finish = (ended: boolean) => {
      clearTimeout(bound);
      socket.destroy();
      resolve({ bodyBytes: headEnd === -1 ? 0 : received - headEnd, ended });
    };
    const bound = setTimeout(() => finish(false), pauseMs + 20_000);
    socket.on('connect', () => {
      socket.write('GET /big.bin HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n');
      socket.pause();
      setTimeout(() => socket.resume(), pauseMs);
    });
    socket.on('data', (chunk: Buffer) => {
      if (headEnd === -1) {
        head += chunk.toString('latin1');
        const at = head.indexOf('\r\n\r\n');
        if (at !== -1) headEnd = at + 4;
      }
      received += chunk.length;
    });
    socket.on('end', () => finish(true));
    socket.on('error', () => finish(true));
  });
}

describe('http.sendTimeout (#20)', () => {
  const dir = tempDir();
  let portico: RunningPortico;
  before(async () => {
    mkdirSync(join(dir.path, 'public'));
    // A sparse file: 64 MiB of zeros without writing them.
    const fd = openSync(join(dir.path, 'public', 'big.bin'), 'w');
    ftruncateSync(fd, FILE_BYTES);
    closeSync(fd);
    portico = await startWithConfig(dir.path, {
      workers: 1,
      log: { access: false },
      http: { sendTimeout: '1s' },
      servers: [{ listen: `127.0.0.1:${await freePort()}`, static: { root: join(dir.path, 'public') } }],
    });
  });
  after(async () => {
    await portico?.stop();
    dir.remove();
  });

  it('a client that takes nothing for longer than sendTimeout is disconnected', async () => {
    const result = await download(portico.port, 5_000);
    assert.equal(result.ended, true, 'the connection ended');
    assert.ok(result.bodyBytes < FILE_BYTES, `the whole file arrived (${result.bodyBytes} bytes): the stalled connection was not closed`);
  });

  it('a client that pauses for less than sendTimeout gets the whole file', async () => {
    const result = await download(portico.port, 300);
    assert.equal(result.ended, true);
    assert.equal(result.bodyBytes, FILE_BYTES);
  });
});
