/**
 * WebSocket and other `Upgrade`s through the reverse proxy (nginx's `proxy_http_version 1.1` with
 * `Upgrade`/`Connection` passed on): the handshake goes to the upstream; its 101 goes to the
 * client as received (less the hidden fields), then bytes flow both ways until either side closes
 * or the connection is idle for the group's `idleTimeout`. An upstream that declines (any other
 * status) is answered as a normal response (RFC 9110 §7.8).
 */
import type { Duplex, Writable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { ResolvedUpstream } from '../../../config/resolved.js';
import type { RequestContext } from '../../context.js';
import { sendHead } from '../../http/respond.js';
import { DONE, type Outcome } from './attempt.js';
import { CLIENT_GONE, ClientGone, HeaderTimeout, classifyFailure, errorCode } from './errors.js';
import { clientResponseHeaders } from './headers.js';
import type { UpstreamServer } from './upstream.js';

/** Bytes a client may send after an Upgrade request before the upstream's 101 (kept for the upstream). */
const EARLY_DATA_LIMIT = 64 * 1024;

/** One Upgrade attempt on `server`; resolves once the tunnel closed, the answer went out, or the client left. */
export function tunnel(ctx: RequestContext, server: UpstreamServer, path: string, headers: string[], hide: ReadonlySet<string>, group: ResolvedUpstream): Promise<Outcome> {
  const upgrade = ctx.upgrade as { socket: Duplex; head: Buffer };
  const protocol = String(ctx.req.headers.upgrade ?? 'websocket');
  const idle = group.idleTimeout;
  const headerTimeout = group.headerTimeout;
  return new Promise<Outcome>((resolve) => {
    const client = upgrade.socket;
    let out: Writable = ctx.res;
    let controller: Dispatcher.DispatchController | null = null;
    let settled = false;
    let headerTimer: NodeJS.Timeout | undefined;
    const settle = (outcome: Outcome) => {
      if (!settled) {
        settled = true;
        clearTimeout(headerTimer);
        stopWatching();
        resolve(outcome);
      }
    };
    // The client left before the upstream answered the handshake: drop the upstream request
    // too, rather than hold its connection until the header timeout. node:http hands the
    // socket over paused, and a paused socket never sees the client's FIN: read it, keeping
    // what the client sends early (bounded) for the upstream.
    const early: Buffer[] = [];
    let earlyBytes = 0;
    const onEarlyData = (chunk: Buffer) => {
      early.push(chunk);
      earlyBytes += chunk.length;
      if (earlyBytes >= EARLY_DATA_LIMIT) client.pause();
    };
    const onClientGone = () => {
      controller?.abort(new ClientGone('client closed the connection'));
      settle(DONE);
    };
    const stopWatching = () => {
      client.off('data', onEarlyData);
      client.off('end', onClientGone);
      client.off('close', onClientGone);
    };
    client.on('data', onEarlyData);
    client.once('end', onClientGone);
    client.once('close', onClientGone);
    const handler: Dispatcher.DispatchHandler = {
      onRequestStart(c) {
        controller = c;
        if (settled) c.abort(new ClientGone('client closed the connection'));
        else if (headerTimeout > 0) headerTimer = setTimeout(() => c.abort(new HeaderTimeout('handshake timeout')), headerTimeout);
      },
      onRequestUpgrade(_c, statusCode, upstreamHeaders, upstream) {
        clearTimeout(headerTimer);
        if (settled || client.destroyed) {
          upstream.destroy();
          settle(DONE);
          return;
        }
        stopWatching();
        const lines = [`HTTP/1.1 ${statusCode} Switching Protocols`];
        for (const [name, value] of Object.entries(upstreamHeaders)) {
          if (value === undefined || hide.has(name)) continue;
          for (const item of Array.isArray(value) ? value : [value]) lines.push(`${name}: ${item}`);
        }
        ctx.status = statusCode;
        client.write(`${lines.join('\r\n')}\r\n\r\n`);
        if (upgrade.head.length > 0) upstream.write(upgrade.head);
        for (const chunk of early) upstream.write(chunk);
        const close = () => {
          client.destroy();
          upstream.destroy();
        };
        for (const socket of [client, upstream] as Duplex[]) {
          (socket as Duplex & { setTimeout?: (ms: number, cb: () => void) => void }).setTimeout?.(idle, close);
          socket.on('error', close);
          socket.on('close', close);
        }
        client.pipe(upstream);
        upstream.pipe(client);
        upstream.once('close', () => settle(DONE));
      },
      onResponseStart(_c, statusCode, upstreamHeaders) {
        clearTimeout(headerTimer);
        // The upstream declined the upgrade: pass its answer on as a normal response.
        out = sendHead(ctx, statusCode, clientResponseHeaders(upstreamHeaders as Record<string, string | string[]>, hide));
      },
      onResponseData(_c, chunk) {
        out.write(chunk);
      },
      onResponseEnd() {
        out.end();
        settle(DONE);
      },
      onResponseError(_c, error) {
        const code = errorCode(error);
        if (code === CLIENT_GONE) return;
        if (ctx.res.headersSent || ctx.status === 101) {
          upgrade.socket.destroy();
          settle(DONE);
          return;
        }
        settle({ kind: 'failed', ...classifyFailure(code) });
      },
    };
    server.pool.dispatch({ path, method: 'GET', headers, upgrade: protocol, body: null } as Dispatcher.DispatchOptions, handler);
  });
}
