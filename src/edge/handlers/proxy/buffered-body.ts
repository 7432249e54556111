/**
 * A request body read whole before it goes upstream, for a transport that must say the body's
 * length first: uwsgi's CONTENT_LENGTH comes in the packet before the body (uwsgi.ts). A chunked
 * body (RFC 9112 §7.1) is dechunked by node's parser and collected here, as nginx does with its
 * client body buffer: in memory up to MEMORY_LIMIT, then in a temporary file (nginx's
 * client_body_temp), removed once the attempt ends. The route's `maxBodySize` still bounds it:
 * the body watch (edge/http/limits.ts) errors the request stream at the limit, and the caller
 * answers that refusal (413).
 */
import { createReadStream, createWriteStream, rmSync, type WriteStream } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { randomBytes } from 'node:crypto';

/** Kept in memory up to this; past it, the body goes to a file (nginx's client_body_buffer_size, larger: a process serves many such bodies at once). */
export const MEMORY_LIMIT = 1024 * 1024;

export interface BufferedBody {
  readonly length: number;
  /** The body from its first byte (once per attempt). */
  open(): Readable;
  /** Removes the temporary file, if any. */
  dispose(): void;
}

/** Reads `req` to its end. Rejects when the stream errors (a refused body, a client that left). */
export function bufferBody(req: IncomingMessage): Promise<BufferedBody> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    let file: { path: string; stream: WriteStream } | null = null;
    const dispose = (): void => {
      if (file) rmSync(file.path, { force: true });
    };
    const fail = (error: Error): void => {
      cleanup();
      file?.stream.destroy();
      dispose();
      reject(error);
    };
    const onData = (chunk: Buffer): void => {
      length += chunk.length;
      if (file) {
        if (!file.stream.write(chunk)) {
          req.pause();
          file.stream.once('drain', () => req.resume());
        }
        return;
      }
      chunks.push(chunk);
      if (length > MEMORY_LIMIT) {
        const path = join(tmpdir(), `portico-body-${process.pid}-${randomBytes(6).toString('hex')}`);
        // 0600: a request body is the client's data.
        file = { path, stream: createWriteStream(path, { mode: 0o600 }) };
        file.stream.on('error', fail);
        for (const part of chunks.splice(0)) file.stream.write(part);
      }
    };
    const onEnd = (): void => {
      cleanup();
      const done = (): void =>
        resolve({
          length,
          open: () => (file ? createReadStream(file.path) : Readable.from(chunks, { objectMode: false })),
          dispose,
        });
      if (file) file.stream.end(done);
      else done();
    };
    const onAborted = (): void => fail(new Error('the client left before its body ended'));
    const cleanup = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', fail);
      req.off('aborted', onAborted);
    };
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('error', fail);
    req.once('aborted', onAborted);
  });
}
