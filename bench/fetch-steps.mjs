// Micro-benchmark of the Fetch gateway's per-request steps (µs each): where the app server's
// time goes (docs/performance.md). Run: node bench/fetch-steps.mjs
const N = 100000;
let t = performance.now();
for (let i = 0; i < N; i++) { const h = new Headers(); h.append('host', '127.0.0.1:8080'); h.append('user-agent', 'wrk'); }
console.log('headers', (performance.now() - t) / N * 1000, 'us');
t = performance.now();
for (let i = 0; i < N; i++) { new Request('http://127.0.0.1:8080/', { method: 'GET', headers: [['host','x']], signal: new AbortController().signal }); }
console.log('request', (performance.now() - t) / N * 1000, 'us');
t = performance.now();
for (let i = 0; i < N; i++) { new Response('Hello, World!', { headers: { 'content-type': 'text/plain' } }); }
console.log('response', (performance.now() - t) / N * 1000, 'us');
t = performance.now();
for (let i = 0; i < N; i++) { new AbortController(); }
console.log('abortcontroller', (performance.now() - t) / N * 1000, 'us');
t = performance.now();
for (let i = 0; i < 20000; i++) { const r = new Response('Hello, World!'); const rd = r.body.getReader(); await rd.read(); await rd.read(); }
console.log('read body', (performance.now() - t) / 20000 * 1000, 'us');

// The gateway's fast path (src/app/gateway/lazy-request.ts, fast-response.ts; needs the build):
// what replaces the four steps above for a handler that reads the URL and answers a string.
const { LazyRequest } = await import('../dist/app/gateway/lazy-request.js');
const { PorticoResponse, isFast } = await import('../dist/app/gateway/fast-response.js');
const incoming = { method: 'GET', url: '/', headers: { host: '127.0.0.1:8080' }, rawHeaders: ['Host', '127.0.0.1:8080', 'User-Agent', 'wrk'] };
t = performance.now();
let sink = 0;
for (let i = 0; i < N; i++) sink += new LazyRequest(incoming).url.length;
console.log('lazy request (method + url)', (performance.now() - t) / N * 1000, 'us');
t = performance.now();
for (let i = 0; i < N; i++) sink += new LazyRequest(incoming).headers.get('user-agent').length;
console.log('lazy request + one header', (performance.now() - t) / N * 1000, 'us');
t = performance.now();
for (let i = 0; i < N; i++) sink += isFast(new PorticoResponse('Hello, World!', { headers: { 'content-type': 'text/plain' } })) ? 1 : 0;
console.log('fast response + its check', (performance.now() - t) / N * 1000, 'us', sink > 0 ? '' : '?');
