/**
 * HTTP/2 abuse against a real `portico up` over TLS, with hand-made frames (RFC 9113 §4.1) on a
 * raw TLS socket: rapid reset (CVE-2023-44487), SETTINGS and PING floods, a CONTINUATION flood
 * (CVE-2024-27316), an HPACK bomb, and more concurrent streams than allowed. Each attack is
 * bounded (a count and a deadline) and sent to 127.0.0.1 only. For each: the attacker's session
 * ends (GOAWAY or a closed connection) or its excess is refused, the process stays up with its
 * memory bounded, and a normal h2 client is served meanwhile.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect as h2connect } from 'node:http2';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { freePort, startWithConfig, tempDir, type RunningPortico } from '../helpers/portico.js';
import { makeCa, makeCert, type TestCa } from '../helpers/tls.js';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
const FRAME = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, CONTINUATION: 9 } as const;
const FLAG = { END_STREAM: 0x1, END_HEADERS: 0x4, ACK: 0x1 } as const;

function frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream & 0x7fffffff, 5);
  return Buffer.concat([head, payload]);
}

/** HPACK (RFC 7541 §6): :method GET, :scheme https, :path / from the static table; :authority literal. */
function requestBlock(authority = 'localhost'): Buffer {
  return Buffer.concat([Buffer.from([0x82, 0x87, 0x84, 0x01, authority.length]), Buffer.from(authority)]);
}

function rstStream(stream: number, code = 8 /* CANCEL */): Buffer {
  const payload = Buffer.alloc(4);
  payload.writeUInt32BE(code);
  return frame(FRAME.RST_STREAM, 0, stream, payload);
}

interface Attacker {
  readonly socket: TLSSocket;
  /** A GOAWAY's error code, once one arrived. */
  goaway(): number | null;
  /** RST_STREAM error codes received, in order. */
  readonly resets: number[];
  /** The server's SETTINGS (identifier → value). */
  readonly settings: Map<number, number>;
  closed(): boolean;
  /** Resolves when the server ended the session (GOAWAY or close) or after `ms`. */
  ended(ms: number): Promise<boolean>;
}

/** A raw h2 connection: the preface and an empty SETTINGS sent; frames from the server parsed for GOAWAY. */
function attacker(port: number, ca: string): Promise<Attacker> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', ca: readFileSync(ca), ALPNProtocols: ['h2'] }, () => {
      assert.equal(socket.alpnProtocol, 'h2');
      socket.write(Buffer.concat([PREFACE, frame(FRAME.SETTINGS, 0, 0)]));
      resolve({
        socket,
        resets,
        settings,
        goaway: () => goaway,
        closed: () => isClosed,
        async ended(ms) {
          const deadline = Date.now() + ms;
          while (goaway === null && !isClosed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
          return goaway !== null || isClosed;
        },
      });
    });
    let goaway: number | null = null;
    let isClosed = false;
    const resets: number[] = [];
    const settings = new Map<number, number>();
    let pending = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 9) {
        const length = pending.readUIntBE(0, 3);
        if (pending.length < 9 + length) break;
        if (pending[3] === FRAME.GOAWAY) goaway = pending.readUInt32BE(9 + 4);
        if (pending[3] === FRAME.RST_STREAM) resets.push(pending.readUInt32BE(9));
        if (pending[3] === FRAME.SETTINGS && ((pending[4] as number) & FLAG.ACK) === 0) for (let at = 9; at + 6 <= 9 + length; at += 6) settings.set(pending.readUInt16BE(at), pending.readUInt32BE(at + 2));
        pending = pending.subarray(9 + length);
      }
    });
    socket.on('close', () => (isClosed = true));
    socket.on('error', () => (isClosed = true));
    socket.once('error', reject);
  });
}

/** Writes `count` frames made by `make(i)` in batches, stopping early once the server ended the session. */
async function flood(target: Attacker, count: number, make: (i: number) => Buffer): Promise<number> {
  let sent = 0;
  const batch: Buffer[] = [];
  for (let i = 0; i < count && !target.closed() && target.goaway() === null; i++) {
    batch.push(make(i));
    sent++;
    if (batch.length === 200) {
      const ok = target.socket.write(Buffer.concat(batch.splice(0)));
      if (!ok) await Promise.race([new Promise((r) => target.socket.once('drain', r)), new Promise((r) => setTimeout(r, 500))]);
    }
  }
  if (batch.length > 0 && !target.closed()) target.socket.write(Buffer.concat(batch));
  return sent;
}

function rssMiB(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match?.[1] ?? 0) / 1024;
}

describe('HTTP/2 abuse: each attack is bounded, the process stays up and serves others', () => {
  const dir = tempDir();
  let ca: TestCa;
  let portico: RunningPortico;
  let port: number;
  let rssBefore = 0;

  /** A normal client: a new session, one GET, 200. */
  async function normalClientServed(): Promise<void> {
    const session = h2connect(`https://localhost:${port}`, { ca: readFileSync(ca.cert) });
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const stream = session.request({ ':path': '/' });
        stream.on('response', (headers) => resolve(Number(headers[':status'])));
        stream.on('error', reject);
        stream.resume();
      });
      assert.equal(status, 200);
    } finally {
      session.close();
    }
  }

  before(async () => {
    ca = makeCa(dir.path);
    const site = makeCert(dir.path, ca, 'site', ['localhost']);
    port = await freePort();
    portico = await startWithConfig(dir.path, { workers: 1, log: { access: false }, servers: [{ listen: `127.0.0.1:${port}`, names: ['localhost'], tls: { cert: site.cert, key: site.key }, routes: [{ respond: { status: 200, body: 'ok\n' } }] }] });
    await normalClientServed();
    rssBefore = rssMiB(portico.pid);
  });

  after(async () => {
    await portico?.stop();
    dir.remove();
  });

  const survived = async (what: string): Promise<string> => {
    assert.doesNotThrow(() => process.kill(portico.pid, 0), `portico is alive after ${what}`);
    await normalClientServed();
    const rss = rssMiB(portico.pid);
    assert.ok(rss < rssBefore + 128, `RSS ${rss.toFixed(1)} MiB after ${what} (${rssBefore.toFixed(1)} before)`);
    return `RSS ${rssBefore.toFixed(1)} MiB before the attacks, ${rss.toFixed(1)} MiB after ${what}`;
  };

  it('rapid reset (HEADERS then RST_STREAM, 100,000 times): the session is ended', async (t) => {
    const target = await attacker(port, ca.cert);
    const normal = normalClientServed();
    const sent = await flood(target, 100_000, (i) => Buffer.concat([frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1 + 2 * i, requestBlock()), rstStream(1 + 2 * i)]));
    assert.ok(await target.ended(10_000), `the session was not ended after ${sent} resets`);
    t.diagnostic(`ended after ${sent} of 100,000 HEADERS+RST_STREAM pairs sent (GOAWAY code ${target.goaway() ?? 'none: closed'})`);
    target.socket.destroy();
    await normal;
    t.diagnostic(await survived('rapid reset'));
  });

  it('SETTINGS flood (200,000 frames, never reading the ACKs): the session is ended', async (t) => {
    const target = await attacker(port, ca.cert);
    // A normal client on its own session while the attack runs.
    const normal = normalClientServed();
    target.socket.pause();
    const sent = await flood(target, 200_000, () => frame(FRAME.SETTINGS, 0, 0));
    target.socket.resume();
    assert.ok(await target.ended(10_000), `the session was not ended after ${sent} SETTINGS`);
    target.socket.destroy();
    await normal;
    t.diagnostic(await survived('a SETTINGS flood'));
  });

  it('PING flood (200,000 frames, never reading the ACKs): the session is ended', async (t) => {
    const target = await attacker(port, ca.cert);
    // A normal client on its own session while the attack runs.
    const normal = normalClientServed();
    target.socket.pause();
    const sent = await flood(target, 200_000, () => frame(FRAME.PING, 0, 0, Buffer.alloc(8)));
    target.socket.resume();
    assert.ok(await target.ended(10_000), `the session was not ended after ${sent} PINGs`);
    target.socket.destroy();
    await normal;
    t.diagnostic(await survived('a PING flood'));
  });

  it('CONTINUATION flood (a header block that never ends, 100,000 frames of 1 KiB): the session is ended', async (t) => {
    const target = await attacker(port, ca.cert);
    // A normal client on its own session while the attack runs.
    const normal = normalClientServed();
    target.socket.write(frame(FRAME.HEADERS, 0, 1, requestBlock()));
    // Each CONTINUATION carries a literal header field without indexing (RFC 7541 §6.2.2), new name, 1000-byte value.
    const field = Buffer.concat([Buffer.from([0x00, 0x05]), Buffer.from('x-pad'), Buffer.from([0x7f, 1000 - 127]), Buffer.alloc(1000, 0x61)]);
    const sent = await flood(target, 100_000, () => frame(FRAME.CONTINUATION, 0, 1, field));
    assert.ok(await target.ended(10_000), `the session was not ended after ${sent} CONTINUATION frames`);
    target.socket.destroy();
    await normal;
    t.diagnostic(await survived('a CONTINUATION flood'));
  });

  it('HPACK bomb (one 4 KiB entry in the dynamic table referenced 16,000 times per block, 200 blocks): refused, then the session is ended', async (t) => {
    const target = await attacker(port, ca.cert);
    // A normal client on its own session while the attack runs.
    const normal = normalClientServed();
    // Literal with incremental indexing, new name (RFC 7541 §6.2.1): "x-bomb" with a 4,000-byte value enters the dynamic table as index 62.
    const value = Buffer.alloc(4000, 0x62);
    const insert = Buffer.concat([Buffer.from([0x40, 0x06]), Buffer.from('x-bomb'), Buffer.from([0x7f, (4000 - 127) & 0x7f | 0x80, (4000 - 127) >> 7]), value]);
    const references = Buffer.alloc(16_000, 0x80 | 62); // 16,000 × 4 KB decoded = 64 MB of header list per block
    const sent = await flood(target, 200, (i) => frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1 + 2 * i, Buffer.concat([requestBlock(), i === 0 ? insert : Buffer.alloc(0), references])));
    assert.ok(await target.ended(10_000), `the session was not ended after ${sent} bombs`);
    target.socket.destroy();
    await normal;
    t.diagnostic(await survived('an HPACK bomb'));
  });

  it('more concurrent streams than SETTINGS_MAX_CONCURRENT_STREAMS (128): the excess is refused, the session is kept', async (t) => {
    const target = await attacker(port, ca.cert);
    // A normal client on its own session while the attack runs.
    const normal = normalClientServed();
    // Streams left open (no END_STREAM): 300 of them.
    const sent = await flood(target, 300, (i) => frame(FRAME.HEADERS, FLAG.END_HEADERS, 1 + 2 * i, requestBlock()));
    assert.equal(sent, 300);
    for (let i = 0; i < 100 && !target.settings.has(0x3); i++) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(target.settings.get(0x3 /* SETTINGS_MAX_CONCURRENT_STREAMS */), 128);
    // Streams past the limit are refused (RFC 9113 §5.1.2: REFUSED_STREAM); answered ones free
    // their slot (each is answered, then reset with NO_ERROR since its request never ends), so
    // fewer than 300 - 128 may be refused, but never none.
    const REFUSED_STREAM = 0x7;
    await new Promise((resolve) => setTimeout(resolve, 500));
    const refused = target.resets.filter((code) => code === REFUSED_STREAM).length;
    assert.ok(refused > 0, `no stream past 128 was refused (resets: ${target.resets.length})`);
    assert.equal(target.goaway(), null, 'the session itself is not ended');
    target.socket.destroy();
    await normal;
    t.diagnostic(await survived('too many streams'));
  });
});
