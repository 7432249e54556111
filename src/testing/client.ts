/**
 * One request over one connection, with node:http's client, answered as a Fetch `Response`: the
 * test server's fetch (over an in-memory connection) and a test's request to a listening Portico
 * (over a socket) are the same code, so their answers can be compared.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { Readable } from 'node:stream';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';

/** Statuses whose answer has no body (RFC 9110 §6.4.1): a Response refuses one. */
const NO_BODY = new Set([101, 103, 204, 205, 304]);

/**
 * Sends `request` over the connection `connect` makes (the URL's host as `Host`, unless the
 * request has one; its body whole, with Content-Length) and resolves with the answer as sent: a
 * redirect is not followed, a compressed body not decoded. The connection closes after it.
 */
export async function sendRequest(connect: () => Duplex, request: Request): Promise<Response> {
  const url = new URL(request.url);
  const body = request.body === null ? null : Buffer.from(await request.arrayBuffer());
  const headers: Record<string, string> = {};
  request.headers.forEach((value, name) => {
    headers[name] = value;
  });
  headers.host ??= url.host;
  if (body !== null) headers['content-length'] = String(body.length);
  const connection = connect();
  const answer = await new Promise<IncomingMessage>((resolve, reject) => {
    const outgoing = httpRequest({ createConnection: () => connection, method: request.method, path: `${url.pathname}${url.search}`, headers }, resolve);
    outgoing.on('error', reject);
    request.signal.addEventListener('abort', () => outgoing.destroy(request.signal.reason as Error), { once: true });
    outgoing.end(body ?? undefined);
  });
  const responseHeaders = new Headers();
  for (let i = 0; i < answer.rawHeaders.length; i += 2) responseHeaders.append(answer.rawHeaders[i] as string, answer.rawHeaders[i + 1] as string);
  const status = answer.statusCode ?? 502;
  const bodyless = request.method === 'HEAD' || NO_BODY.has(status);
  if (bodyless) answer.resume();
  // One connection per request, as a client without keep-alive.
  answer.once('end', () => connection.destroy());
  return new Response(bodyless ? null : (Readable.toWeb(answer) as unknown as ReadableStream<Uint8Array> & NodeReadableStream), {
    status,
    statusText: answer.statusMessage ?? '',
    headers: responseHeaders,
  });
}
