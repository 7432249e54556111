/**
 * The admin API (Caddy's admin endpoint, HAProxy's runtime API): the node's state as JSON, a
 * reload through the supervisor's command queue (the path SIGHUP takes), the upstream servers as
 * every edge worker sees them, and one Prometheus scrape for the node. It runs in the supervisor,
 * on `admin.listen`, never on a site's port.
 *
 * Security, after Caddy's CVE-2026-27589 (a cross-origin `POST /load` replaced a whole config):
 *   - the Host header must name the admin address (a DNS-rebinding page cannot reach it by name);
 *   - a browser request from another origin (Origin, Sec-Fetch-Site) is refused;
 *   - a state-changing request must be JSON (a cross-site form can only send simple content types)
 *     or carry the token;
 *   - with `admin.token` every request but `GET /health` carries `Authorization: Bearer TOKEN`
 *     (the config requires a token on a TCP address that is not loopback);
 *   - every action is logged.
 */
import { timingSafeEqual } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { ResolvedAdmin, ResolvedConfig } from '../config/resolved.js';
import { log } from '../core/log.js';
import type { ArbiterSnapshot } from '../app/arbiter.js';
import type { UpstreamChange } from '../edge/bus.js';
import type { EdgeSnapshot } from '../edge/server.js';
import type { SupervisorSnapshot } from './node.js';

export interface ReloadResult {
  readonly ok: boolean;
  /** Why it was refused, or null. */
  readonly problem: string | null;
  /** The config's field-path problems, when the config was invalid. */
  readonly problems: readonly string[] | null;
  readonly generation: number;
}

/** What the admin API reads and asks of the supervisor. */
export interface AdminHost {
  snapshot(): SupervisorSnapshot;
  config(): ResolvedConfig;
  reload(trigger: string): Promise<ReloadResult>;
  /** Each edge process's snapshot (the supervisor's own, or every worker's that answers). */
  edgeSnapshots(): Promise<{ readonly pid: number; readonly snapshot: EdgeSnapshot }[]>;
  metrics(): Promise<{ readonly contentType: string; readonly body: string }>;
  /** The dashboard's cumulative numbers (node-metrics.ts). */
  stats(): Promise<unknown>;
  /** Drains, enables or weighs an upstream server in every edge process; how many found it, of how many answered. */
  changeUpstream(group: string, server: string, change: UpstreamChange): Promise<{ readonly found: number; readonly processes: number }>;
  /** Purges a cache key or prefix (memory and disk, every worker); the count purged, or null when the zone does not exist. */
  purge(zone: string, key: string, prefix: boolean): Promise<number | null>;
  apps(): Record<string, ArbiterSnapshot>;
  /** A rolling restart of an app's workers; false when there is no such app. */
  reloadApp(name: string): boolean;
  /** An app's worker count, until the next reload; false when there is no such app. */
  scaleApp(name: string, workers: number): boolean;
}

/** `POST /upstreams/{group}/{server}/drain|enable|weight`, the server URL-encoded (its URL or its name). */
const UPSTREAM_ACTION = /^\/upstreams\/([^/]+)\/([^/]+)\/(drain|enable|weight)$/;
/** `POST /apps/{name}/reload|scale`. */
const APP_ACTION = /^\/apps\/([^/]+)\/(reload|scale)$/;
/** The largest JSON body an admin request may carry. */
const BODY_LIMIT = 64 * 1024;

class BadRequest extends Error {}

/** A path segment decoded; a malformed %-escape is the client's error (400), not ours. */
function segment(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new BadRequest(`malformed %-escape in ${JSON.stringify(text)}`);
  }
}

/** The request's JSON body (an object), or a BadRequest that becomes a 400. */
async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > BODY_LIMIT) throw new BadRequest(`the body is over ${BODY_LIMIT} bytes`);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new BadRequest('the body is not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new BadRequest('expected a JSON object');
  return value as Record<string, unknown>;
}

export const VERSION = '0.1.0';

const ASSET_TYPES: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8' };
/** The dashboard's own files and uPlot's (npm `uplot`), which the build copies into dist/supervisor/dashboard. */
const DASHBOARD_FILES = new Set(['index.html', 'dashboard.js', 'dashboard.css', 'uPlot.iife.min.js', 'uPlot.min.css']);
const assets = new Map<string, Buffer | null>();

function readAsset(name: string): Buffer | null {
  if (!DASHBOARD_FILES.has(name)) return null;
  let body = assets.get(name);
  if (body === undefined) {
    const candidates = [new URL(`./dashboard/${name}`, import.meta.url)];
    // Run from the sources (tsx), uPlot is read from node_modules.
    if (name.startsWith('uPlot')) {
      try {
        candidates.push(pathToFileURL(createRequire(import.meta.url).resolve(`uplot/dist/${name}`)));
      } catch {
        // not installed: the built copy is the only one
      }
    }
    body = null;
    for (const candidate of candidates) {
      try {
        body = readFileSync(candidate);
        break;
      } catch {
        // the next one
      }
    }
    assets.set(name, body);
  }
  return body;
}

type Handler = (req: IncomingMessage, res: ServerResponse) => Promise<void> | void;

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = `${JSON.stringify(body, null, 2)}\n`;
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' });
  res.end(text);
}

/** The config as the API shows it: secrets replaced (the admin token, the EAB key). */
function redacted(config: ResolvedConfig): unknown {
  return {
    ...config,
    admin: config.admin ? { ...config.admin, token: config.admin.token === null ? null : '(set)' } : null,
    acme: { ...config.acme, eab: config.acme.eab ? { kid: config.acme.eab.kid, hmacKey: '(set)' } : null },
  };
}

/** Upstream servers as the node sees them: counters summed over the edge processes, health as each one says. */
export function mergeUpstreams(snapshots: readonly { readonly pid: number; readonly snapshot: EdgeSnapshot }[]): unknown[] {
  const groups = new Map<string, { name: string; balance: string; servers: Map<string, Record<string, unknown>> }>();
  for (const { pid, snapshot } of snapshots) {
    for (const group of snapshot.upstreams) {
      let merged = groups.get(group.name);
      if (!merged) groups.set(group.name, (merged = { name: group.name, balance: group.balance, servers: new Map() }));
      for (const server of group.servers) {
        const seen = merged.servers.get(server.url) ?? { url: server.url, weight: server.weight, backup: server.backup, healthy: true, drained: false, down: false, inFlight: 0, attempts: 0, failures: 0, byProcess: [] as unknown[] };
        seen.healthy = (seen.healthy as boolean) && server.healthy;
        seen.down = (seen.down as boolean) || server.down;
        seen.drained = (seen.drained as boolean) || server.drained;
        seen.inFlight = (seen.inFlight as number) + server.inFlight;
        seen.attempts = (seen.attempts as number) + server.attempts;
        seen.failures = (seen.failures as number) + server.failures;
        (seen.byProcess as unknown[]).push({ pid, healthy: server.healthy, drained: server.drained, down: server.down, inFlight: server.inFlight, recentFailures: server.recentFailures });
        merged.servers.set(server.url, seen);
      }
    }
  }
  return [...groups.values()].map((group) => ({ name: group.name, balance: group.balance, servers: [...group.servers.values()] }));
}

/** The Host values that name the admin address (none to check for a unix socket, or for all interfaces behind a token). */
function allowedHosts(settings: ResolvedAdmin, port: number): Set<string> | null {
  if (settings.listen.kind === 'unix') return null;
  const host = settings.listen.host;
  if (host === '' || host === '0.0.0.0' || host === '::') return null;
  const names = new Set([host.includes(':') ? `[${host}]` : host, 'localhost', '127.0.0.1', '[::1]']);
  return new Set([...names].map((name) => `${name}:${port}`));
}

function tokenMatches(given: string | undefined, token: string): boolean {
  const bearer = /^Bearer (.+)$/.exec(given ?? '')?.[1];
  if (bearer === undefined) return false;
  const a = Buffer.from(bearer);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

export class AdminServer {
  readonly settings: ResolvedAdmin;
  readonly #host: AdminHost;
  readonly #server: Server;
  #hosts: Set<string> | null = null;
  readonly #routes: Record<string, Handler>;

  constructor(settings: ResolvedAdmin, host: AdminHost) {
    this.settings = settings;
    this.#host = host;
    this.#routes = {
      'GET /health': (_req, res) => {
        const state = this.#host.snapshot().state;
        json(res, state === 'stopping' ? 503 : 200, { status: state === 'stopping' ? 'stopping' : 'ok', state });
      },
      'GET /status': (_req, res) => json(res, 200, this.#status()),
      'GET /config': (_req, res) => json(res, 200, redacted(this.#host.config())),
      'POST /reload': async (req, res) => {
        req.resume();
        const result = await this.#host.reload('admin API');
        json(res, result.ok ? 200 : 400, result);
      },
      'GET /upstreams': async (_req, res) => json(res, 200, { upstreams: mergeUpstreams(await this.#host.edgeSnapshots()) }),
      'POST /cache/purge': async (req, res) => {
        const body = await readJson(req);
        const zone = body.zone ?? 'default';
        if (typeof zone !== 'string' || typeof body.key !== 'string' || body.key === '') throw new BadRequest('expected { "key": "…", "zone": "default", "prefix": false }');
        const prefix = body.prefix === true;
        const purged = await this.#host.purge(zone, body.key, prefix);
        json(res, purged === null ? 404 : 200, purged === null ? { error: `no cache zone ${JSON.stringify(zone)}` } : { zone, key: body.key, prefix, purged });
      },
      'GET /apps': (_req, res) => json(res, 200, { apps: this.#host.apps() }),
      'GET /': (_req, res) => this.#asset(res, 'index.html'),
      'GET /stats': async (_req, res) => json(res, 200, await this.#host.stats()),
      'GET /metrics': async (_req, res) => {
        const { contentType, body } = await this.#host.metrics();
        res.writeHead(200, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' });
        res.end(body);
      },
    };
    this.#server = createServer((req, res) => void this.#handle(req, res));
    this.#server.headersTimeout = 10_000;
    this.#server.requestTimeout = 30_000;
  }

  /** The URL it answers on, once it listens ("http://127.0.0.1:2019", "unix:/path"). */
  url = '';

  /** Listens; resolves with the URL it answers on. */
  async start(): Promise<string> {
    const listen = this.settings.listen;
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      if (listen.kind === 'unix') {
        rmSync(listen.path, { force: true });
        this.#server.listen(listen.path, () => resolve());
      } else this.#server.listen(listen.port, listen.host === '' ? undefined : listen.host, () => resolve());
    });
    const address = this.#server.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;
    this.#hosts = allowedHosts(this.settings, port);
    this.url = listen.kind === 'unix' ? `unix:${listen.path}` : `http://${listen.host === '' ? '127.0.0.1' : listen.host.includes(':') ? `[${listen.host}]` : listen.host}:${port}`;
    return this.url;
  }

  close(): Promise<void> {
    this.#server.closeAllConnections();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }

  /** A file of the dashboard (its page, script, style, and uPlot's, copied beside this module at build). */
  #asset(res: ServerResponse, name: string): void {
    const type = ASSET_TYPES[name.slice(name.lastIndexOf('.'))];
    const body = type ? readAsset(name) : null;
    if (!type || body === null) return json(res, 404, { error: `no asset ${name}` });
    res.writeHead(200, {
      'Content-Type': type,
      'Content-Length': body.length,
      'Cache-Control': 'no-cache',
      // The page loads only its own files and talks only to this API.
      'Content-Security-Policy': "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'",
      'X-Content-Type-Options': 'nosniff',
    });
    res.end(body);
  }

  #status(): unknown {
    const snapshot = this.#host.snapshot();
    return {
      version: VERSION,
      pid: snapshot.pid,
      state: snapshot.state,
      uptimeSeconds: Math.round((Date.now() - snapshot.startedAt) / 1000),
      generation: snapshot.generation,
      lastReload: snapshot.lastReload,
      source: snapshot.source,
      workers: snapshot.workers,
      edgeWorkers: snapshot.edgeWorkers,
      listeners: snapshot.addresses,
      apps: snapshot.apps,
      cacheZones: snapshot.edge?.cacheZones ?? null,
      certificates: snapshot.certificates,
    };
  }

  /** Why a request is refused before any route, or null. */
  #refusal(req: IncomingMessage): { status: number; error: string } | null {
    const token = this.settings.token;
    const hosts = this.#hosts;
    if (hosts && !hosts.has((req.headers.host ?? '').toLowerCase())) return { status: 403, error: `host not allowed: ${JSON.stringify(req.headers.host ?? '')}` };
    const origin = req.headers.origin;
    if (origin !== undefined) {
      let host = '';
      try {
        host = new URL(origin).host;
      } catch {
        // not a URL: refused below
      }
      if (hosts ? !hosts.has(host) : host !== (req.headers.host ?? '').toLowerCase()) return { status: 403, error: `cross-origin request refused (Origin ${origin})` };
    }
    const site = req.headers['sec-fetch-site'];
    if (site === 'cross-site' || site === 'same-site') return { status: 403, error: `cross-site request refused (Sec-Fetch-Site ${site})` };
    // No data without the token: health, and the dashboard's page and files (it asks for the token).
    const isHealth = req.method === 'GET' && (req.url === '/health' || req.url === '/' || (req.url ?? '').startsWith('/assets/'));
    const authorized = token !== null && tokenMatches(req.headers.authorization, token);
    if (token !== null && !authorized && !isHealth) return { status: 401, error: 'a bearer token is required (Authorization: Bearer …)' };
    return null;
  }

  /** A state-changing request without the token must be JSON: a form can send only simple types (RFC 9110 §8.3), and JSON needs a script, which CORS stops cross-site. */
  #formRefusal(req: IncomingMessage): { status: number; error: string } | null {
    if (req.method === 'GET' || req.method === 'HEAD') return null;
    if (this.settings.token !== null && tokenMatches(req.headers.authorization, this.settings.token)) return null;
    const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
    return type === 'application/json' ? null : { status: 415, error: 'a state-changing request must be sent as application/json (or carry the token)' };
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0] as string;
    try {
      const action = req.method === 'POST' ? UPSTREAM_ACTION.exec(path) : null;
      const appAction = req.method === 'POST' ? APP_ACTION.exec(path) : null;
      const asset = req.method === 'GET' && path.startsWith('/assets/') ? path.slice('/assets/'.length) : null;
      const handler: Handler | undefined = asset !== null ? (_req, res) => this.#asset(res, asset) : this.#routes[`${req.method} ${path}`];
      const refusal = this.#refusal(req) ?? (action || appAction || handler ? this.#formRefusal(req) : null);
      if (refusal) {
        log().warn({ admin: `${req.method} ${path}`, remote: req.socket.remoteAddress, status: refusal.status, reason: refusal.error }, 'admin: request refused');
        req.resume();
        return json(res, refusal.status, { error: refusal.error });
      }
      if (action) {
        const [group, server] = [segment(action[1] as string), segment(action[2] as string)];
        log().info({ admin: `${req.method} ${path}`, remote: req.socket.remoteAddress }, 'admin: action');
        let change: UpstreamChange;
        if (action[3] === 'weight') {
          const weight = (await readJson(req)).weight;
          if (typeof weight !== 'number' || !Number.isInteger(weight) || weight < 1 || weight > 1000) throw new BadRequest('expected { "weight": a whole number 1-1000 }');
          change = { weight };
        } else {
          req.resume();
          change = { drained: action[3] === 'drain' };
        }
        const result = await this.#host.changeUpstream(group, server, change);
        const state = 'weight' in change ? { weight: change.weight } : { state: change.drained ? 'drained' : 'enabled' };
        return json(res, result.found > 0 ? 200 : 404, result.found > 0 ? { upstream: group, server, ...state, ...result } : { error: `no server ${JSON.stringify(server)} in upstream ${JSON.stringify(group)}` });
      }
      if (appAction) {
        const name = segment(appAction[1] as string);
        log().info({ admin: `${req.method} ${path}`, remote: req.socket.remoteAddress }, 'admin: action');
        let found: boolean;
        if (appAction[2] === 'scale') {
          const workers = (await readJson(req)).workers;
          if (typeof workers !== 'number' || !Number.isInteger(workers) || workers < 1 || workers > 1024) throw new BadRequest('expected { "workers": a whole number 1-1024 }');
          found = this.#host.scaleApp(name, workers);
          if (found) return json(res, 200, { app: name, workers });
        } else {
          req.resume();
          found = this.#host.reloadApp(name);
          if (found) return json(res, 200, { app: name, reload: 'rolling' });
        }
        return json(res, 404, { error: `no app ${JSON.stringify(name)}` });
      }
      if (!handler) {
        req.resume();
        const known = Object.keys(this.#routes).some((route) => route.endsWith(` ${path}`));
        return json(res, known ? 405 : 404, { error: known ? `method ${req.method} not allowed on ${path}` : `no admin endpoint ${path}` });
      }
      if (req.method !== 'GET') log().info({ admin: `${req.method} ${path}`, remote: req.socket.remoteAddress }, 'admin: action');
      if (req.method === 'GET') req.resume();
      await handler(req, res);
    } catch (error) {
      if (error instanceof BadRequest) {
        if (!res.headersSent) json(res, 400, { error: error.message });
        return;
      }
      log().error({ err: error, admin: `${req.method} ${path}` }, 'admin: request failed');
      if (!res.headersSent) json(res, 500, { error: (error as Error).message });
      else res.destroy();
    }
  }
}
