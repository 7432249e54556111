/**
 * Request smuggling (RFC 9112 §6.3, §11.2) through the reverse proxy. Every case of the corpus
 * (test/fixtures/requests/smuggling/cases.json) goes byte for byte over a raw loopback socket to
 * the built portico, which proxies everything to a recording upstream: a raw TCP server that keeps
 * every byte it receives and parses what it receives strictly (one request line with single
 * spaces, at most one of Content-Length / Transfer-Encoding: chunked, exact chunk framing), so a
 * request the edge forwarded in a form an upstream could split shows up as an extra request or as
 * an ambiguous one. Cases run one at a time, so the upstream's bytes between two cases are that
 * case's.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { freePort, startWithConfig, tempDir, type RunningPortico } from '../helpers/portico.js';

interface ForwardedRequest {
  readonly method: string;
  readonly target: string;
  readonly body: string;
  /** The Host the upstream must see. */
  readonly host?: string;
}

interface SmugglingCase {
  readonly id: string;
  readonly family: string;
  readonly expect: 'reject' | 'forward';
  /** For `reject`: "head" (refused before anything reaches the upstream) or "body" (the framing broke mid-body). */
  readonly stage?: 'head' | 'body';
  readonly forwarded?: readonly ForwardedRequest[];
  /** For `forward`: the edge must close the connection afterwards. */
  readonly closes?: boolean;
  readonly note?: string;
  readonly raw: string;
}

const CORPUS = JSON.parse(readFileSync(new URL('../fixtures/requests/smuggling/cases.json', import.meta.url), 'utf8')) as { smuggled: string; cases: SmugglingCase[] };
const MARKER = '/smuggled';
/** Refusals a reject case may get: 400, 501 (a transfer coding not implemented), 505 (not HTTP/1.x). */
const REFUSALS = new Set([400, 501, 505]);
/** Client fields that must never reach the upstream (RFC 9110 §7.6.1), besides the Connection and Transfer-Encoding undici sets itself. */
const HOP_BY_HOP = new Set(['keep-alive', 'proxy-connection', 'te', 'trailer', 'http2-settings', 'expect']);

// ---------------------------------------------------------------------------------------------
// The recording upstream

interface UpstreamRequest {
  readonly connection: number;
  readonly requestLine: string;
  readonly method: string;
  readonly target: string;
  readonly headers: readonly (readonly [string, string])[];
  body: Buffer;
  /** The whole message arrived (body included) and was answered. */
  complete: boolean;
}

interface UpstreamRecord {
  /** Every byte received, per connection, in arrival order. */
  readonly chunks: { readonly connection: number; readonly data: Buffer }[];
  readonly requests: UpstreamRequest[];
  /** Framing the strict parser refused: each entry says why (must stay empty). */
  readonly violations: string[];
}

const OK = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok';
const SWITCH_H2C = 'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n';

class RecordingUpstream {
  readonly record: UpstreamRecord = { chunks: [], requests: [], violations: [] };
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  #connections = 0;
  port = 0;

  constructor() {
    this.#server = createServer((socket) => this.#accept(socket));
  }

  async start(): Promise<void> {
    this.port = await freePort();
    this.#server.listen(this.port, '127.0.0.1');
    await once(this.#server, 'listening');
  }

  async stop(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    this.#server.close();
    await once(this.#server, 'close');
  }

  /** Resolves once nothing has arrived for `ms` (at most 3 s). */
  async quiet(ms: number): Promise<void> {
    const deadline = Date.now() + 3000;
    for (;;) {
      const count = this.record.chunks.length;
      await new Promise((resolve) => setTimeout(resolve, ms));
      if (this.record.chunks.length === count || Date.now() > deadline) return;
    }
  }

  /** Position in the record now, to slice one case's share later. */
  mark(): { chunks: number; requests: number; violations: number } {
    return { chunks: this.record.chunks.length, requests: this.record.requests.length, violations: this.record.violations.length };
  }

  since(mark: ReturnType<RecordingUpstream['mark']>): { bytes: Buffer; requests: UpstreamRequest[]; violations: string[] } {
    return {
      bytes: Buffer.concat(this.record.chunks.slice(mark.chunks).map((chunk) => chunk.data)),
      requests: this.record.requests.slice(mark.requests),
      violations: this.record.violations.slice(mark.violations),
    };
  }

  #accept(socket: Socket): void {
    const connection = ++this.#connections;
    this.#sockets.add(socket);
    socket.on('close', () => this.#sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    let buffer = Buffer.alloc(0);
    socket.on('data', (data: Buffer) => {
      this.record.chunks.push({ connection, data });
      buffer = Buffer.concat([buffer, data]);
      for (;;) {
        const parsed = this.#parse(connection, buffer);
        if (parsed === null) return; // needs more bytes
        if (parsed === 'violation') {
          socket.destroy();
          return;
        }
        buffer = buffer.subarray(parsed.consumed);
        socket.write(parsed.answer);
      }
    });
  }

  /**
   * One request from the start of `buffer`: null while incomplete (its head is recorded as soon as
   * it is whole, so a request cut mid-body still shows), 'violation' on anything ambiguous.
   */
  #parse(connection: number, buffer: Buffer): { consumed: number; answer: string } | 'violation' | null {
    const text = buffer.toString('latin1');
    const end = text.indexOf('\r\n\r\n');
    if (end === -1) return null;
    const [requestLine = '', ...lines] = text.slice(0, end).split('\r\n');
    const violation = (why: string): 'violation' => {
      this.record.violations.push(`connection ${connection}: ${why} in ${JSON.stringify(text.slice(0, 300))}`);
      return 'violation';
    };
    const line = /^([A-Z]+) (\S+) HTTP\/1\.1$/.exec(requestLine);
    if (!line) return violation(`request line ${JSON.stringify(requestLine)}`);
    const headers: [string, string][] = [];
    for (const field of lines) {
      const match = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*(.*?)[ \t]*$/.exec(field);
      if (!match || /[\0\r\n]/.test(field)) return violation(`header line ${JSON.stringify(field)}`);
      headers.push([(match[1] as string).toLowerCase(), match[2] as string]);
    }
    const all = (name: string) => headers.filter(([key]) => key === name).map(([, value]) => value);
    const te = all('transfer-encoding');
    const cl = all('content-length');
    if (te.length > 0 && cl.length > 0) return violation('Content-Length with Transfer-Encoding');
    if (te.length > 1 || (te.length === 1 && te[0] !== 'chunked')) return violation(`Transfer-Encoding ${JSON.stringify(te)}`);
    if (cl.length > 1 || (cl.length === 1 && !/^(0|[1-9][0-9]*)$/.test(cl[0] as string))) return violation(`Content-Length ${JSON.stringify(cl)}`);

    let request = this.record.requests.find((r) => r.connection === connection && !r.complete);
    if (!request) {
      request = { connection, requestLine, method: line[1] as string, target: line[2] as string, headers, body: Buffer.alloc(0), complete: false };
      this.record.requests.push(request);
    }
    let offset = end + 4;
    let body: Buffer;
    if (te.length === 1) {
      const parts: Buffer[] = [];
      for (;;) {
        const lineEnd = buffer.indexOf('\r\n', offset, 'latin1');
        if (lineEnd === -1) return null;
        const sizeLine = buffer.toString('latin1', offset, lineEnd);
        if (!/^[0-9a-fA-F]{1,8}$/.test(sizeLine)) return violation(`chunk size line ${JSON.stringify(sizeLine)}`);
        const size = parseInt(sizeLine, 16);
        offset = lineEnd + 2;
        if (size === 0) {
          // Trailer section: undici sends none, so the next two bytes end the message.
          if (buffer.length < offset + 2) return null;
          if (buffer.toString('latin1', offset, offset + 2) !== '\r\n') return violation('trailer fields');
          offset += 2;
          break;
        }
        if (buffer.length < offset + size + 2) {
          request.body = Buffer.concat([...parts, buffer.subarray(offset, Math.min(buffer.length, offset + size))]);
          return null;
        }
        parts.push(buffer.subarray(offset, offset + size));
        if (buffer.toString('latin1', offset + size, offset + size + 2) !== '\r\n') return violation('no CRLF after chunk data');
        offset += size + 2;
      }
      body = Buffer.concat(parts);
    } else {
      const length = cl.length === 1 ? Number(cl[0]) : 0;
      if (buffer.length < offset + length) {
        request.body = buffer.subarray(offset);
        return null;
      }
      body = buffer.subarray(offset, offset + length);
      offset += length;
    }
    request.body = Buffer.from(body);
    request.complete = true;
    // A naive h2c backend: it "switches" and goes on reading HTTP/1.1 (any tunnel would feed it).
    const upgrade = all('upgrade').join(',').toLowerCase();
    return { consumed: offset, answer: upgrade.includes('h2c') ? SWITCH_H2C : OK };
  }
}

// ---------------------------------------------------------------------------------------------
// The client side

interface Exchange {
  readonly bytes: Buffer;
  /** The server closed (FIN or reset) before the client gave up waiting. */
  readonly closedByServer: boolean;
}

/**
 * Sends `data` on a fresh connection and collects the answer until the server closes, or until
 * `enough(bytes)` holds and `lingerMs` more pass without a close (extra answers would show), or
 * after `idleMs` of silence.
 */
function exchange(port: number, data: Buffer, enough: (bytes: Buffer) => boolean, { idleMs = 3000, lingerMs = 200 } = {}): Promise<Exchange> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1' });
    const chunks: Buffer[] = [];
    let timer: NodeJS.Timeout | undefined;
    let done = false;
    const finish = (closedByServer: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ bytes: Buffer.concat(chunks), closedByServer });
    };
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => finish(false), enough(Buffer.concat(chunks)) ? lingerMs : idleMs);
    };
    socket.on('connect', () => {
      socket.write(data);
      arm();
    });
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      arm();
    });
    socket.on('end', () => finish(true));
    socket.on('close', () => finish(true));
    socket.on('error', (error: NodeJS.ErrnoException) => (error.code === 'ECONNRESET' || error.code === 'EPIPE' ? finish(true) : reject(error)));
  });
}

interface ClientResponse {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: string;
}

/** Splits the bytes a client received into responses (Content-Length or chunked bodies; 1xx have none). */
function responses(raw: Buffer): { list: ClientResponse[]; rest: string } {
  let text = raw.toString('latin1');
  const list: ClientResponse[] = [];
  for (;;) {
    const end = text.indexOf('\r\n\r\n');
    const status = /^HTTP\/1\.[01] (\d{3})/.exec(text);
    if (end === -1 || !status) return { list, rest: text };
    const headers: Record<string, string> = {};
    for (const line of text.slice(0, end).split('\r\n').slice(1)) {
      const colon = line.indexOf(':');
      headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
    }
    const code = Number(status[1]);
    let rest = text.slice(end + 4);
    let body = '';
    if (code >= 200 && code !== 204 && code !== 304) {
      if (headers['transfer-encoding'] === 'chunked') {
        for (;;) {
          const lineEnd = rest.indexOf('\r\n');
          const size = parseInt(rest.slice(0, lineEnd), 16);
          if (lineEnd === -1 || Number.isNaN(size)) return { list, rest: text };
          body += rest.slice(lineEnd + 2, lineEnd + 2 + size);
          rest = rest.slice(lineEnd + 2 + size + 2);
          if (size === 0) break;
        }
      } else {
        const length = Number(headers['content-length'] ?? rest.length);
        body = rest.slice(0, length);
        rest = rest.slice(length);
      }
    }
    // 1xx (100 Continue from node:http) are interim: not answers.
    if (code >= 200) list.push({ status: code, headers, body });
    text = rest;
  }
}

/** "/smuggled" at the start of a request line anywhere in the upstream's bytes (the blunt check). */
function markerAsRequestLine(bytes: Buffer): boolean {
  return /(^|\n)[A-Za-z]+[ \t]+\/smuggled[ \t]/.test(bytes.toString('latin1'));
}

// ---------------------------------------------------------------------------------------------

describe('request smuggling through the proxy', () => {
  const dir = tempDir();
  const upstream = new RecordingUpstream();
  let portico: RunningPortico | undefined;

  before(async () => {
    await upstream.start();
    portico = await startWithConfig(dir.path, {
      log: { level: 'error', access: false },
      upstreams: {
        // One server, never taken out (cases abort upstream requests on purpose), no retries.
        recorder: { servers: [`http://127.0.0.1:${upstream.port}`], maxFails: 0, retry: { tries: 1 } },
      },
      servers: [{ listen: `127.0.0.1:${await freePort()}`, routes: [{ prefix: '/', proxy: { to: 'recorder' } }] }],
    });
  });

  after(async () => {
    await portico?.stop();
    await upstream.stop();
    dir.remove();
  });

  it('has a corpus of at least 24 ambiguous framings, each carrying a request to /smuggled', () => {
    assert.ok(CORPUS.cases.filter((c) => c.expect === 'reject').length >= 24, `${CORPUS.cases.length} cases`);
    assert.equal(new Set(CORPUS.cases.map((c) => c.id)).size, CORPUS.cases.length, 'case ids are unique');
    for (const c of CORPUS.cases) {
      if (c.expect === 'reject') assert.ok(c.raw.includes(MARKER), `${c.id} carries ${MARKER}`);
      assert.ok([...c.raw].every((ch) => ch.charCodeAt(0) <= 0xff), `${c.id} is bytes`);
    }
  });

  for (const c of CORPUS.cases) {
    const title = `${c.family}: ${c.id} → ${c.expect === 'reject' ? `rejected (${c.stage})` : `forwarded ×${c.forwarded?.length ?? 0}`}`;
    it(title, async (t) => {
      const running = portico;
      assert.ok(running, 'portico running');
      const mark = upstream.mark();
      // A reject case waits for the close; a forward case for its answers (and a moment for extras).
      const wanted = c.forwarded ?? [];
      const answer = await exchange(running.port, Buffer.from(c.raw, 'latin1'), (bytes) => c.expect === 'forward' && responses(bytes).list.length >= wanted.length);
      // Let aborted upstream requests land (a cut body, a late reset) before slicing this case's record.
      await upstream.quiet(150);
      const seen = upstream.since(mark);
      const { list, rest } = responses(answer.bytes);
      const statuses = list.map((r) => r.status);
      t.diagnostic(`client: ${statuses.length > 0 ? statuses.join(', ') : 'no answer'}${answer.closedByServer ? ', closed' : ', kept open'}; upstream: ${seen.bytes.length} bytes, ${seen.requests.filter((r) => r.complete).length} whole request(s)`);
      const context = `client got ${JSON.stringify(answer.bytes.toString('latin1').slice(0, 400))}; upstream got ${JSON.stringify(seen.bytes.toString('latin1').slice(0, 600))}`;

      // Whatever the case: nothing ambiguous ever reaches the upstream, and "/smuggled" never starts
      // a request line there unless the corpus says it is a real, separately framed request.
      assert.deepEqual(seen.violations, [], `upstream saw ambiguous framing; ${context}`);
      const expectedMarkers = (c.forwarded ?? []).filter((f) => f.target === MARKER).length;
      assert.equal(seen.requests.filter((r) => r.target.startsWith(MARKER)).length, expectedMarkers, `upstream requests to ${MARKER}; ${context}`);
      if (expectedMarkers === 0 && !(c.forwarded ?? []).some((f) => f.body.includes(MARKER))) assert.ok(!markerAsRequestLine(seen.bytes), `${MARKER} as a request line upstream; ${context}`);

      if (c.expect === 'reject') {
        assert.ok(statuses.length <= 1, `one answer at most, got ${JSON.stringify(statuses)}; ${context}`);
        for (const status of statuses) assert.ok(REFUSALS.has(status), `status ${status}; ${context}`);
        assert.equal(rest, '', `nothing but the answer; ${context}`);
        assert.ok(answer.closedByServer, `the connection must be closed (its framing is lost); ${context}`);
        assert.equal(seen.requests.filter((r) => r.complete).length, 0, `no request may reach the upstream whole; ${context}`);
        assert.ok(!seen.bytes.toString('latin1').includes(MARKER), `no byte of ${MARKER} upstream; ${context}`);
        if (c.stage === 'head') assert.equal(seen.bytes.length, 0, `refused before routing: the upstream must see nothing; ${context}`);
        return;
      }

      assert.deepEqual(statuses, wanted.map(() => 200), `one 200 per forwarded request; ${context}`);
      for (const response of list) assert.equal(response.body, 'ok', `the upstream's body; ${context}`);
      assert.equal(rest, '', `nothing after the responses; ${context}`);
      // Pipelined requests are forwarded as soon as each is parsed, over as many upstream
      // connections as are free, so they may arrive in any order (the client still gets its
      // answers in order, RFC 9112 §9.3.2): compare them as a set, in one canonical order.
      const byRequest = (a: { method: string; target: string; body: string }, b: { method: string; target: string; body: string }): number => `${a.method} ${a.target} ${a.body}`.localeCompare(`${b.method} ${b.target} ${b.body}`);
      const got = seen.requests
        .map((r) => ({
          method: r.method,
          target: r.target,
          body: r.body.toString('latin1'),
          complete: r.complete,
          host: r.headers.find(([name]) => name === 'host')?.[1],
        }))
        .sort(byRequest);
      const expected = [...wanted].sort(byRequest);
      assert.deepEqual(
        got.map(({ method, target, body, complete }) => ({ method, target, body, complete })),
        expected.map(({ method, target, body }) => ({ method, target, body, complete: true })),
        `forwarded exactly once each, bodies as bodies; ${context}`,
      );
      expected.forEach((w, i) => {
        if (w.host !== undefined) assert.equal(got[i]?.host, w.host, `Host sent upstream (RFC 9112 §3.2.2); ${context}`);
      });
      // Nothing the client said about its own connection is passed on (undici writes its own
      // Connection; a WebSocket handshake is the one Upgrade the proxy forwards).
      for (const request of seen.requests) {
        for (const [name, value] of request.headers) {
          const passed = HOP_BY_HOP.has(name) || (name === 'upgrade' && value.toLowerCase() !== 'websocket');
          assert.ok(!passed, `"${name}: ${value}" forwarded; ${context}`);
        }
      }
      if (c.closes) assert.ok(answer.closedByServer, `the connection must be closed; ${context}`);
    });
  }

  it('upstream never saw /smuggled as a request except where the corpus pipelines it for real', () => {
    const allowed = CORPUS.cases.reduce((n, c) => n + (c.forwarded ?? []).filter((f) => f.target === MARKER).length, 0);
    assert.equal(upstream.record.requests.filter((r) => r.target.startsWith(MARKER)).length, allowed);
    assert.deepEqual(upstream.record.violations, []);
  });
});
