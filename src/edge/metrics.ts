/**
 * The edge's Prometheus metrics (prom-client), per process: a subscriber of the observation
 * channels (observe.ts), never called from the request path itself. The supervisor merges the
 * registries of its edge workers into one scrape (prom-client's aggregation; supervisor/metrics.ts).
 *
 * Labels stay bounded: the server and route ids of the config, the method (the registered ones,
 * else "OTHER"), the status class, the upstream group and server name ("host:port", a unix path), the
 * cache zone. Never the
 * path or the client's address.
 *
 * Per request the cost is a Map lookup by the route id, an array slot by method and status class,
 * and a few additions (DurationSeries says why not prom-client's own metrics there); `npm run
 * bench` measures it ("portico metrics": the same server with the admin listener on).
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { Counter, Gauge, Registry } from 'prom-client';
import type { RequestContext } from './context.js';
import { cacheVerdict } from './log/access.js';
import { cacheStatus, inFlight, requestEnd, upstreamAttempt, type CacheStatusMessage, type UpstreamAttemptMessage } from './observe.js';
import type { EdgeSnapshot } from './server.js';

/** Seconds: 1 ms … 10 s, the spread of a static file to a slow upstream (Prometheus' default buckets start at 5 ms). */
const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'CONNECT', 'TRACE', 'PURGE', 'OTHER'];
const METHOD_INDEX = new Map(METHODS.map((method, i) => [method, i]));
const OTHER_METHOD = METHODS.length - 1;
const STATUS_CLASSES = ['0xx', '1xx', '2xx', '3xx', '4xx', '5xx'];

/**
 * One label set's histogram and counters, kept as plain numbers. Why not prom-client's own
 * Counter and Histogram on the request path: their `inc`/`observe` hash the label object on every
 * call (even through `labels()` children), which cost a static 1 KiB request about a quarter of
 * its throughput in `npm run bench` (57.8k → 42.4k req/s); a Map lookup by the route id and an
 * array slot costs next to nothing. prom-client still formats, merges and aggregates them: these
 * series are read at scrape time through metrics that implement its `get()` (HistogramSeries).
 */
class DurationSeries {
  count = 0;
  sum = 0;
  /** Per bucket, not cumulative; the last is above the largest bound. */
  readonly buckets = new Float64Array(DURATION_BUCKETS.length + 1);

  constructor(readonly labels: Record<string, string>) {}

  observe(seconds: number): void {
    this.count++;
    this.sum += seconds;
    let i = 0;
    while (i < DURATION_BUCKETS.length && seconds > (DURATION_BUCKETS[i] as number)) i++;
    (this.buckets[i] as number)++;
  }
}

class RequestSeries extends DurationSeries {
  requestBytes = 0;
  responseBytes = 0;
}

type Value = { value: number; labels: Record<string, string | number>; metricName?: string };

/** A metric prom-client's Registry can hold, whose values are computed when it is read. */
export function computed(name: string, help: string, type: 'counter' | 'gauge' | 'histogram', values: () => Value[]): { name: string; help: string; type: string; aggregator: 'sum'; get(): Promise<unknown>; reset(): void } {
  return { name, help, type, aggregator: 'sum', get: async () => ({ name, help, type, aggregator: 'sum', values: values() }), reset: () => undefined };
}

function histogramValues(name: string, series: Iterable<DurationSeries>): Value[] {
  const values: Value[] = [];
  for (const one of series) {
    let cumulative = 0;
    DURATION_BUCKETS.forEach((bound, i) => {
      cumulative += one.buckets[i] as number;
      values.push({ value: cumulative, labels: { ...one.labels, le: bound }, metricName: `${name}_bucket` });
    });
    values.push({ value: one.count, labels: { ...one.labels, le: '+Inf' }, metricName: `${name}_bucket` });
    values.push({ value: one.sum, labels: one.labels, metricName: `${name}_sum` });
    values.push({ value: one.count, labels: one.labels, metricName: `${name}_count` });
  }
  return values;
}

export class EdgeMetrics {
  readonly registry = new Registry();
  /** Request series by route id (or server id, or "none"), then by method × status class. */
  readonly #requests = new Map<string, (RequestSeries | undefined)[]>();
  /** Upstream attempts by group, then by server. */
  readonly #upstreams = new Map<string, Map<string, { series: DurationSeries; outcomes: Map<string, number>; retries: number }>>();
  #processRequests = 0;
  /** Cache lookups by zone, then by result: plain numbers, as the request series (a cached request is a hot path too). */
  readonly #cacheResults = new Map<string, Map<string, number>>();
  readonly #rejections: Counter;
  readonly #onRequest = (message: unknown) => this.#request(message as RequestContext);
  readonly #onAttempt = (message: unknown) => this.#attempt(message as UpstreamAttemptMessage);
  readonly #onCache = (message: unknown) => this.#cache(message as CacheStatusMessage);

  /** `snapshot` reads the edge's gauges (connections, upstream health, cache size) at scrape time. */
  constructor(snapshot: () => EdgeSnapshot | null) {
    const registers = [this.registry];
    const requestSeries = () => [...this.#requests.values()].flatMap((slots) => slots.filter((one): one is RequestSeries => one !== undefined));
    const register = (metric: ReturnType<typeof computed>) => this.registry.registerMetric(metric as never);
    register(computed('portico_http_requests_total', 'HTTP requests answered, by server, route, method and status class.', 'counter', () => requestSeries().map((one) => ({ value: one.count, labels: one.labels }))));
    register(computed('portico_http_request_duration_seconds', 'From the request head to the response closed.', 'histogram', () => histogramValues('portico_http_request_duration_seconds', requestSeries())));
    register(computed('portico_http_request_body_bytes_total', 'Request body bytes received (as declared by Content-Length).', 'counter', () => requestSeries().map((one) => ({ value: one.requestBytes, labels: one.labels }))));
    register(computed('portico_http_response_body_bytes_total', 'Response body bytes sent.', 'counter', () => requestSeries().map((one) => ({ value: one.responseBytes, labels: one.labels }))));
    register(computed('portico_edge_process_requests_total', 'Requests answered by each edge process (label: its pid).', 'counter', () => [{ value: this.#processRequests, labels: { pid: process.pid } }]));
    const attempts = () => [...this.#upstreams.values()].flatMap((servers) => [...servers.values()]);
    register(computed('portico_upstream_requests_total', 'Attempts on upstream servers, by outcome (ok, or what failed).', 'counter', () => attempts().flatMap((one) => [...one.outcomes].map(([outcome, value]) => ({ value, labels: { ...one.series.labels, outcome } })))));
    register(computed('portico_upstream_retries_total', 'Attempts that were retries of a request on another server.', 'counter', () => attempts().map((one) => ({ value: one.retries, labels: one.series.labels }))));
    register(computed('portico_upstream_response_duration_seconds', 'An attempt from its start to the response relayed (or the failure).', 'histogram', () => histogramValues('portico_upstream_response_duration_seconds', attempts().map((one) => one.series))));
    register(computed('portico_cache_requests_total', 'Cache lookups by zone and result (hit, miss, stale, bypass, …).', 'counter', () => [...this.#cacheResults].flatMap(([zone, results]) => [...results].map(([result, value]) => ({ value, labels: { zone, result } })))));
    this.#rejections = new Counter({ name: 'portico_limit_rejections_total', help: 'Requests refused by a rate or connection limit, by kind.', labelNames: ['kind'], registers });
    new Gauge({
      name: 'portico_http_requests_in_flight',
      help: 'Requests received and not yet answered in full.',
      registers,
      collect() {
        this.set(inFlight.requests);
      },
    });
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
        for (const group of snapshot()?.upstreams ?? []) for (const server of group.servers) this.set({ upstream: group.name, server: server.name }, server.healthy && !server.down && !server.drained ? 1 : 0);
      },
    });
    new Gauge({
      name: 'portico_upstream_in_flight',
      help: 'Requests in flight to an upstream server.',
      labelNames: ['upstream', 'server'],
      registers,
      collect() {
        this.reset();
        for (const group of snapshot()?.upstreams ?? []) for (const server of group.servers) this.set({ upstream: group.name, server: server.name }, server.inFlight);
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
    const scope = ctx.route?.id ?? ctx.server?.id ?? (ctx.forward ? 'forward' : 'none');
    let slots = this.#requests.get(scope);
    if (!slots) this.#requests.set(scope, (slots = new Array<RequestSeries | undefined>(METHODS.length * STATUS_CLASSES.length)));
    const method = METHOD_INDEX.get(ctx.req.method as string) ?? OTHER_METHOD;
    const statusClass = Math.min(5, Math.max(0, Math.floor(ctx.status / 100)));
    const slot = method * STATUS_CLASSES.length + statusClass;
    let series = slots[slot];
    if (!series) {
      const server = ctx.server?.id ?? (ctx.forward ? 'forward' : 'none');
      series = slots[slot] = new RequestSeries({ server, route: ctx.route?.id ?? 'none', method: METHODS[method] as string, status_class: STATUS_CLASSES[statusClass] as string });
    }
    series.observe((performance.now() - ctx.startedAt) / 1000);
    series.responseBytes += ctx.bodyBytes;
    const declared = ctx.req.headers['content-length'];
    if (declared !== undefined) {
      const length = Number(declared);
      if (length > 0) series.requestBytes += length;
    }
    this.#processRequests++;
    if (ctx.limitReqStatus === 'REJECTED') this.#rejections.inc({ kind: 'rate' });
    else if (ctx.connLimited && ctx.status === 503) this.#rejections.inc({ kind: 'connection' });
  }

  #attempt(message: UpstreamAttemptMessage): void {
    let servers = this.#upstreams.get(message.upstream);
    if (!servers) this.#upstreams.set(message.upstream, (servers = new Map()));
    let one = servers.get(message.server);
    if (!one) servers.set(message.server, (one = { series: new DurationSeries({ upstream: message.upstream, server: message.server }), outcomes: new Map(), retries: 0 }));
    const outcome = message.ok ? 'ok' : message.code.toLowerCase() || 'error';
    one.outcomes.set(outcome, (one.outcomes.get(outcome) ?? 0) + 1);
    if (message.attempt > 1) one.retries++;
    one.series.observe(message.durationMs / 1000);
  }

  #cache(message: CacheStatusMessage): void {
    // One word per Cache-Status, the access log's (hit, stale, miss, revalidated…).
    const result = cacheVerdict(message.status);
    let results = this.#cacheResults.get(message.zone);
    if (!results) this.#cacheResults.set(message.zone, (results = new Map()));
    results.set(result, (results.get(result) ?? 0) + 1);
  }
}
