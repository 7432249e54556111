// The response-head split shared by the bare Node peers (node-front.mjs, node-bare-proxy.mjs):
// the least work that turns an HTTP/1.x head into what node:http's writeHead takes.

/** Hop-by-hop fields (RFC 9110 §7.6.1) and the length, which node:http writes itself. */
const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length']);

/** `buffer`'s head, which ends at `headEnd` (the index of its blank line): the status, the fields to pass on (a flat list), and the Content-Length (0 when absent). */
export function splitHead(buffer, headEnd) {
  const lines = buffer.toString('latin1', 0, headEnd).split('\r\n');
  const headers = [];
  let length = 0;
  for (let i = 1; i < lines.length; i++) {
    const colon = lines[i].indexOf(':');
    const name = lines[i].slice(0, colon);
    const value = lines[i].slice(colon + 1).trim();
    const lower = name.toLowerCase();
    if (lower === 'content-length') length = Number(value);
    else if (!HOP.has(lower)) headers.push(name, value);
  }
  return { status: Number(lines[0].slice(9, 12)), headers, length };
}
