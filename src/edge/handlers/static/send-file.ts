/**
 * Streaming a byte range of an open file to the client, bounded for slow readers (#20).
 *
 * Node has no sendfile, so the bytes pass through buffers of ours; what a connection holds while
 * its client dawdles is what matters. createReadStream reads ahead to its highWaterMark while the
 * last chunk still waits in the socket, and a slow reader held both for as long as it liked
 * (slowhttptest -X: ~450 KiB per connection). Here the next read starts only once the socket has
 * handed the last bytes to the kernel.
 *
 * Fast and slow clients want opposite things. Each read is a round trip through libuv's thread
 * pool, so a fast client wants large reads (a 4 MiB file over loopback, `wrk -t1 -c8`: 0.94 GB/s
 * with one 32 KiB buffer, 1.5 GB/s with one 64 KiB buffer, 1.2-1.3 GB/s as here, 1.0 GB/s with
 * eight 8 KiB pieces); a slow reader holds whatever waits in its socket.
 * So a read fills FILE_PIECES separate buffers at once (readv, one round trip), and they are
 * written one at a time, each once the previous one reached the kernel. A client that takes them
 * all at once gets 64 KiB per read; one that leaves a piece waiting past the current event-loop
 * turn holds that piece (16 KiB) only: the pieces not yet written are let go and read again from
 * the file when it has taken the one that waits.
 */
import type { FileHandle } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import type { RequestContext } from '../../context.js';

/** Bytes per buffer: what a slow reader's connection holds while it waits (nginx's output_buffers are 32k). */
const FILE_PIECE = 16 * 1024;
/** Buffers filled by one read: 64 KiB per thread-pool round trip for a client that keeps up. */
const FILE_PIECES = 4;

/**
 * Streams bytes `start`..`end` of `handle` to `out`. The file is closed when the range is sent,
 * when reading fails (the response is cut: its head is gone) and when the client leaves.
 */
export function sendFileRange(ctx: RequestContext, handle: FileHandle, start: number, end: number, out: Writable): void {
  const res = ctx.res;
  let done = false;
  const finish = (error?: Error): void => {
    if (done) return;
    done = true;
    res.off('close', finish);
    void handle.close().catch(() => undefined);
    if (error && !res.destroyed) res.destroy(error);
  };
  res.once('close', finish);
  // Through a compressor (middleware/encode.ts) or an HTTP/2 stream the bytes are not straight
  // on a socket: read on while `out` takes them (its own back-pressure bounds what it holds).
  if (out !== res || ctx.req.httpVersionMajor !== 1) return sendThrough(handle, start, end, out, () => done, finish);
  sendToSocket(handle, start, end, out, () => done, finish);
}

function sendToSocket(handle: FileHandle, start: number, end: number, out: Writable, isDone: () => boolean, finish: (error?: Error) => void): void {
  let position = start;
  /** Buffers free to read into (a slow client's let-go pieces are not kept). */
  let free: Buffer[] = [];
  /** Pieces per read: FILE_PIECES while the client keeps up, 1 after it let a piece wait. */
  let width = FILE_PIECES;
  // The current read: its filled pieces, the next one to write, whether the event loop moved on since.
  let filled: Buffer[] = [];
  let nextPiece = 0;
  let turnPassed = false;
  const read = (): void => {
    if (isDone()) return;
    const left = end + 1 - position;
    if (left <= 0) {
      out.end();
      finish();
      return;
    }
    const count = Math.min(width, Math.ceil(left / FILE_PIECE));
    while (free.length < count) free.push(Buffer.allocUnsafeSlow(FILE_PIECE));
    const targets = free.slice(0, count);
    const last = left - (count - 1) * FILE_PIECE;
    if (last < FILE_PIECE) targets[count - 1] = (targets[count - 1] as Buffer).subarray(0, last);
    handle.readv(targets, position).then(({ bytesRead }) => {
      if (isDone()) return;
      // The file shrank under us: what was promised (Content-Length) cannot be sent.
      if (bytesRead === 0) return finish(new Error('file shorter than its stat'));
      filled = [];
      for (let i = 0, rest = bytesRead; rest > 0; i++) {
        const piece = targets[i] as Buffer;
        filled.push(rest >= piece.length ? piece : piece.subarray(0, rest));
        rest -= piece.length;
      }
      nextPiece = 0;
      turnPassed = false;
      setImmediate(onTurnPassed);
      writePiece();
    }, finish);
  };
  const writePiece = (): void => {
    if (isDone()) return;
    if (nextPiece === filled.length) {
      // Every piece went in the turn they were read in: the client keeps up.
      if (!turnPassed) width = FILE_PIECES;
      return read();
    }
    const piece = filled[nextPiece++] as Buffer;
    position += piece.length;
    out.write(piece, (error) => (error ? finish(error) : writePiece()));
  };
  // A piece still in the socket once the event loop has moved on: the client is slow. The pieces
  // not yet written are let go (their bytes are read again when the socket has taken this one,
  // from `position`, which counts written pieces only) and the next reads are one piece wide.
  const onTurnPassed = (): void => {
    turnPassed = true;
    if (nextPiece >= filled.length) return;
    const waiting = free[nextPiece - 1];
    filled = [];
    nextPiece = 0;
    free = waiting ? [waiting] : [];
    width = 1;
  };
  read();
}

/** Through a stream that takes chunks and may hold them (a compressor, an HTTP/2 stream): each chunk a buffer of its own, read on while it takes them. */
function sendThrough(handle: FileHandle, start: number, end: number, out: Writable, isDone: () => boolean, finish: (error?: Error) => void): void {
  let position = start;
  const chunkSize = FILE_PIECE * FILE_PIECES;
  const next = (): void => {
    if (isDone()) return;
    const length = Math.min(chunkSize, end + 1 - position);
    if (length <= 0) {
      out.end();
      finish();
      return;
    }
    const buffer = Buffer.allocUnsafeSlow(length);
    handle.read(buffer, 0, length, position).then(({ bytesRead }) => {
      if (isDone()) return;
      if (bytesRead === 0) return finish(new Error('file shorter than its stat'));
      position += bytesRead;
      if (out.write(bytesRead === length ? buffer : buffer.subarray(0, bytesRead))) next();
      else out.once('drain', next);
    }, finish);
  };
  next();
}
