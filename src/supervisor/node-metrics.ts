/**
 * One Prometheus scrape for the whole node: the supervisor's own metrics (config reloads, app
 * workers, certificate expiry, its process) and the edge's, from this process or merged from
 * every edge worker with prom-client's aggregation (counters and histograms summed). A worker that
 * does not answer within a second is left out of that scrape rather than failing it.
 */
import { AggregatorRegistry, Counter, Gauge, Registry, collectDefaultMetrics, type MetricObjectWithValues, type MetricValue } from 'prom-client';
import { computed, type EdgeMetrics } from '../edge/metrics.js';
import type { EdgeWorkers } from './edge-workers.js';
import type { SupervisorSnapshot } from './node.js';

/** Where the edge's metrics come from: this process, or the edge workers. */
export interface EdgeSources {
  readonly inProcess: EdgeMetrics | null;
  readonly workers: EdgeWorkers | null;
}

/** What the dashboard polls (GET /stats), cumulative since each process started counting. */
export interface DashboardStats {
  readonly at: number;
  readonly requests: Record<string, number>;
  /** Histogram buckets of the request duration, by upper bound in seconds ("+Inf" last). */
  readonly durationBuckets: Record<string, number>;
  readonly openConnections: number;
  readonly cache: Record<string, number>;
  /** Requests answered by each edge process, by pid. */
  readonly processRequests: Record<string, number>;
}

/** How long a scrape waits for an edge worker's metrics. */
const WORKER_TIMEOUT_MS = 1000;

export class NodeMetrics {
  readonly #registry = new Registry();
  readonly #reloads: Counter;

  constructor(snapshot: () => SupervisorSnapshot) {
    const registers = [this.#registry];
    collectDefaultMetrics({ register: this.#registry });
    this.#reloads = new Counter({ name: 'portico_config_reloads_total', help: 'Config reloads attempted, by result.', labelNames: ['result'], registers });
    new Gauge({
      name: 'portico_config_last_reload_success',
      help: '1 when the last reload swapped in its config (or none was tried), 0 when it was refused.',
      registers,
      collect() {
        this.set(snapshot().lastReload?.ok === false ? 0 : 1);
      },
    });
    new Gauge({
      name: 'portico_config_generation',
      help: 'Configs swapped in since the start.',
      registers,
      collect() {
        this.set(snapshot().generation);
      },
    });
    new Gauge({
      name: 'portico_edge_workers',
      help: 'Edge worker processes serving (0: the edge runs in the supervisor).',
      registers,
      collect() {
        this.set(snapshot().edgeWorkers.filter((worker) => worker.state === 'serving').length);
      },
    });
    new Gauge({
      name: 'portico_app_workers',
      help: 'Worker processes of an app, by state.',
      labelNames: ['app', 'state'],
      registers,
      collect() {
        this.reset();
        for (const [app, arbiter] of Object.entries(snapshot().apps)) {
          const byState = new Map<string, number>();
          for (const worker of arbiter.workers) byState.set(worker.state, (byState.get(worker.state) ?? 0) + 1);
          for (const [state, count] of byState) this.set({ app, state }, count);
        }
      },
    });
    // The arbiter keeps the totals; the counters read them at each scrape.
    const register = (metric: ReturnType<typeof computed>) => this.#registry.registerMetric(metric as never);
    const appTotal = (field: 'started' | 'crashes') => () => Object.entries(snapshot().apps).map(([app, arbiter]) => ({ value: arbiter[field], labels: { app } }));
    register(computed('portico_app_workers_started_total', 'App worker processes started.', 'counter', appTotal('started')));
    // The shared state (`state`); no series without it.
    const shared = (value: (state: NonNullable<SupervisorSnapshot['shared']>) => { value: number; labels: Record<string, string> }) => () => {
      const state = snapshot().shared;
      return state ? [value(state)] : [];
    };
    register(computed('portico_state_redis_up', '1 while the shared Redis is reachable, 0 while limits follow onRedisDown.', 'gauge', shared((state) => ({ value: state.redis === 'up' ? 1 : 0, labels: {} }))));
    register(computed('portico_state_nodes', "Nodes in the fleet's node set at the last heartbeat.", 'gauge', shared((state) => ({ value: state.nodes, labels: {} }))));
    register(computed('portico_state_fallback_total', 'Limit decisions made by onRedisDown (Redis down, or slower than state.redis.timeout).', 'counter', shared((state) => ({ value: state.fallbacks, labels: { policy: state.onRedisDown } }))));
    register(computed('portico_app_worker_crashes_total', 'App worker processes that exited unplanned.', 'counter', appTotal('crashes')));
    new Gauge({
      name: 'portico_app_requests',
      help: 'Requests served by an app\'s current workers (as of their last heartbeat).',
      labelNames: ['app'],
      registers,
      collect() {
        this.reset();
        for (const [app, arbiter] of Object.entries(snapshot().apps)) this.set({ app }, arbiter.workers.reduce((sum, worker) => sum + worker.requests, 0));
      },
    });
    new Gauge({
      name: 'portico_app_memory_bytes',
      help: 'Resident memory of an app\'s workers together (as of their last heartbeat).',
      labelNames: ['app'],
      registers,
      collect() {
        this.reset();
        for (const [app, arbiter] of Object.entries(snapshot().apps)) this.set({ app }, arbiter.workers.reduce((sum, worker) => sum + worker.rssBytes, 0));
      },
    });
    new Gauge({
      name: 'portico_tls_certificate_expiry_timestamp_seconds',
      help: 'When a managed certificate expires (Unix time).',
      labelNames: ['name', 'issuer'],
      registers,
      collect() {
        this.reset();
        for (const certificate of snapshot().certificates) if (certificate.notAfter) this.set({ name: certificate.name, issuer: certificate.issuer }, Date.parse(certificate.notAfter) / 1000);
      },
    });
  }

  /** Counts a reload (the supervisor calls it with each result). */
  reloaded(ok: boolean): void {
    this.#reloads.inc({ result: ok ? 'ok' : 'refused' });
  }

  /** The node's registry: the supervisor's, with the edge's (this process's, or every answering worker's, aggregated). */
  async #merged(edge: EdgeSources): Promise<Registry> {
    const registries: Registry[] = [this.#registry];
    if (edge.inProcess) registries.push(edge.inProcess.registry);
    if (edge.workers) {
      const answers = await edge.workers.observe('metrics', WORKER_TIMEOUT_MS);
      if (answers.length > 0) registries.push(AggregatorRegistry.aggregate(answers.map((answer) => answer.data as MetricObjectWithValues<MetricValue<string>>[])));
    }
    return Registry.merge(registries);
  }

  /** The node's metrics in Prometheus' text format. */
  async scrape(edge: EdgeSources): Promise<string> {
    return (await this.#merged(edge)).metrics();
  }

  /**
   * The dashboard's numbers, cumulative (the page takes the differences between two polls):
   * requests by status class, the request duration histogram over every label, open
   * connections, cache results.
   */
  async stats(edge: EdgeSources): Promise<DashboardStats> {
    const metrics = await (await this.#merged(edge)).getMetricsAsJSON();
    const values = (name: string): MetricValue<string>[] => (metrics.find((metric) => metric.name === name) as MetricObjectWithValues<MetricValue<string>> | undefined)?.values ?? [];
    const sumBy = (name: string, label: string): Record<string, number> => {
      const out: Record<string, number> = {};
      for (const value of values(name)) {
        const key = String(value.labels[label] ?? '');
        out[key] = (out[key] ?? 0) + value.value;
      }
      return out;
    };
    const buckets: Record<string, number> = {};
    for (const value of values('portico_http_request_duration_seconds')) {
      if ((value as MetricValue<string> & { metricName?: string }).metricName !== 'portico_http_request_duration_seconds_bucket') continue;
      const le = String(value.labels.le);
      buckets[le] = (buckets[le] ?? 0) + value.value;
    }
    return {
      at: Date.now(),
      requests: sumBy('portico_http_requests_total', 'status_class'),
      durationBuckets: buckets,
      openConnections: values('portico_open_connections').reduce((sum, value) => sum + value.value, 0),
      cache: sumBy('portico_cache_requests_total', 'result'),
      processRequests: sumBy('portico_edge_process_requests_total', 'pid'),
    };
  }

  get contentType(): string {
    return this.#registry.contentType;
  }
}
