/**
 * The edge's Prometheus metrics (prom-client), per process: a subscriber of the observation
 * channels (observe.ts), never called from the request path itself. The supervisor merges the
 * registries of its edge workers into one scrape (prom-client's aggregation; supervisor/metrics.ts).
 *
 * Labels stay bounded: the server and route ids of the config, the method (the registered ones,
 * else "OTHER"), the status class, the upstream group and server URL, the cache zone. Never the
 * path or the client's address.
 *
 * Per request the cost is a lookup of the request's label set in a small cache (children made once
 * per route, method and status class) and two increments and one observation; `npm run bench`
 * (A/B with and without the admin listener) measures it.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { RequestContext } from './context.js';
import { cacheStatus, requestEnd, upstreamAttempt, type CacheStatusMessage, type UpstreamAttemptMessage } from './observe.js';
import type { EdgeSnapshot } from './server.js';

/** Seconds: 1 ms … 10 s, the spread of a static file to a slow upstream (Prometheus' default buckets start at 5 ms). */
const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'CONNECT', 'TRACE', 'PURGE']);
const STATUS_CLASSES = ['0xx', '1xx', '2xx', '3xx', '4xx', '5xx'];

const statusClass = (status: number): string => STATUS_CLASSES[Math.min(5, Math.max(0, Math.floor(status / 100)))] as string;

interface RequestChildren {
  readonly requests: Counter.Internal;
  readonly duration: Histogram.Internal<string>;
  readonly requestBytes: Counter.Internal;
  readonly responseBytes: Counter.Internal;
}

export class EdgeMetrics {
  readonly registry = new Registry();
  readonly #requests: Counter;
  readonly #duration: Histogram;
  readonly #requestBytes: Counter;
  readonly #responseBytes: Counter;
  readonly #upstreamRequests: Counter;
  readonly #upstreamRetries: Counter;
  readonly #upstreamDuration: Histogram;
  readonly #cacheRequests: Counter;
  readonly #rejections: Counter;
  /** This process's requests under its pid: the node's scrape shows each edge worker's part. */
  readonly #processRequests: Counter.Internal;
  /** Label children by "server route method class": made once, then one Map lookup per request. */
  readonly #children = new Map<string, RequestChildren>();
  readonly #onRequest = (message: unknown) => this.#request(message as RequestContext);
  readonly #onAttempt = (message: unknown) => this.#attempt(message as UpstreamAttemptMessage);
  readonly #onCache = (message: unknown) => this.#cache(message as CacheStatusMessage);

  /** `snapshot` reads the edge's gauges (connections, upstream health, cache size) at scrape time. */
  constructor(snapshot: () => EdgeSnapshot | null) {
    const registers = [this.registry];
    const byRequest = ['server', 'route', 'method', 'status_class'];
    this.#requests = new Counter({ name: 'portico_http_requests_total', help: 'HTTP requests answered, by server, route, method and status class.', labelNames: byRequest, registers });
    this.#duration = new Histogram({ name: 'portico_http_request_duration_seconds', help: 'From the request head to the response closed.', labelNames: byRequest, buckets: DURATION_BUCKETS, registers });
    this.#requestBytes = new Counter({ name: 'portico_http_request_body_bytes_total', help: 'Request body bytes received (as declared by Content-Length).', labelNames: ['server'], registers });
    this.#responseBytes = new Counter({ name: 'portico_http_response_body_bytes_total', help: 'Response body bytes sent.', labelNames: ['server'], registers });
    this.#upstreamRequests = new Counter({ name: 'portico_upstream_requests_total', help: 'Attempts on upstream servers, by outcome (ok, or what failed).', labelNames: ['upstream', 'server', 'outcome'], registers });
    this.#upstreamRetries = new Counter({ name: 'portico_upstream_retries_total', help: 'Attempts that were retries of a request on another server.', labelNames: ['upstream', 'server'], registers });
    this.#upstreamDuration = new Histogram({ name: 'portico_upstream_response_duration_seconds', help: 'An attempt from its start to the response relayed (or the failure).', labelNames: ['upstream', 'server'], buckets: DURATION_BUCKETS, registers });
    this.#cacheRequests = new Counter({ name: 'portico_cache_requests_total', help: 'Cache lookups by zone and result (hit, miss, stale, bypass, …).', labelNames: ['zone', 'result'], registers });
    this.#processRequests = new Counter({ name: 'portico_edge_process_requests_total', help: 'Requests answered by each edge process (label: its pid).', labelNames: ['pid'], registers }).labels({ pid: String(process.pid) });
    this.#rejections = new Counter({ name: 'portico_limit_rejections_total', help: 'Requests refused by a rate or connection limit, by kind.', labelNames: ['kind'], registers });
    new Gauge({
      name: 'portico_open_connections',
      help: 'Open client connections (WebSocket tunnels included), by listener.',
      labelNames: ['listener'],
      registers,
      collect() {
        this.reset();
        for (const listener of snapshot()?.listeners ?? []) this.set({ listener: listener.key }, listener.connections);
      },
    });
    new Gauge({
      name: 'portico_upstream_healthy',
      help: '1 while an upstream server takes requests, 0 while it is marked down or drained.',
      labelNames: ['upstream', 'server'],
      registers,
      collect() {
        this.reset();
        for (const group of snapshot()?.upstreams ?? []) for (const server of group.servers) this.set({ upstream: group.name, server: server.url }, server.healthy && !server.down && !server.drained ? 1 : 0);
      },
    });
    new Gauge({
      name: 'portico_upstream_in_flight',
      help: 'Requests in flight to an upstream server.',
      labelNames: ['upstream', 'server'],
      registers,
      collect() {
        this.reset();
        for (const group of snapshot()?.upstreams ?? []) for (const server of group.servers) this.set({ upstream: group.name, server: server.url }, server.inFlight);
      },
    });
    new Gauge({
      name: 'portico_cache_entries',
      help: 'Entries in a cache zone (the memory tier of this process, plus the disk tier).',
      labelNames: ['zone'],
      registers,
      collect() {
        this.reset();
        for (const zone of snapshot()?.cacheZones ?? []) this.set({ zone: zone.name }, zone.memory.entries + (zone.disk?.entries ?? 0));
      },
    });
    new Gauge({
      name: 'portico_cache_bytes',
      help: 'Bytes held by a cache zone.',
      labelNames: ['zone'],
      registers,
      collect() {
        this.reset();
        for (const zone of snapshot()?.cacheZones ?? []) this.set({ zone: zone.name }, zone.memory.bytes + (zone.disk?.bytes ?? 0));
      },
    });
  }

  start(): void {
    subscribe(requestEnd.name, this.#onRequest);
    subscribe(upstreamAttempt.name, this.#onAttempt);
    subscribe(cacheStatus.name, this.#onCache);
  }

  stop(): void {
    unsubscribe(requestEnd.name, this.#onRequest);
    unsubscribe(upstreamAttempt.name, this.#onAttempt);
    unsubscribe(cacheStatus.name, this.#onCache);
  }

  #request(ctx: RequestContext): void {
    const server = ctx.server?.id ?? (ctx.forward ? 'forward' : 'none');
    const route = ctx.route?.id ?? 'none';
    const method = METHODS.has(ctx.req.method as string) ? (ctx.req.method as string) : 'OTHER';
    const status = statusClass(ctx.status);
    const key = `${route} ${method} ${status} ${server}`;
    let children = this.#children.get(key);
    if (!children) {
      const labels = { server, route, method, status_class: status };
      children = { requests: this.#requests.labels(labels), duration: this.#duration.labels(labels), requestBytes: this.#requestBytes.labels({ server }), responseBytes: this.#responseBytes.labels({ server }) };
      this.#children.set(key, children);
    }
    children.requests.inc();
    this.#processRequests.inc();
    children.duration.observe((performance.now() - ctx.startedAt) / 1000);
    if (ctx.bodyBytes > 0) children.responseBytes.inc(ctx.bodyBytes);
    const declared = ctx.req.headers['content-length'];
    if (declared !== undefined) {
      const length = Number(declared);
      if (length > 0) children.requestBytes.inc(length);
    }
    if (ctx.limitReqStatus === 'REJECTED') this.#rejections.inc({ kind: 'rate' });
    else if (ctx.connLimited && ctx.status === 503) this.#rejections.inc({ kind: 'connection' });
  }

  #attempt(message: UpstreamAttemptMessage): void {
    const labels = { upstream: message.upstream, server: message.server };
    this.#upstreamRequests.inc({ ...labels, outcome: message.ok ? 'ok' : message.code.toLowerCase() || 'error' });
    if (message.attempt > 1) this.#upstreamRetries.inc(labels);
    this.#upstreamDuration.observe(labels, message.durationMs / 1000);
  }

  #cache(message: CacheStatusMessage): void {
    // Cache-Status (RFC 9211): "Portico; hit", "Portico; fwd=miss; stored", "Portico; fwd=stale"…
    const status = message.status;
    const result = status.includes('; hit') ? (status.includes('stale') ? 'stale' : 'hit') : (/fwd=([a-z-]+)/.exec(status)?.[1] ?? 'other');
    this.#cacheRequests.inc({ zone: message.zone, result });
  }
}
