/**
 * The one schema of `portico.config.*`, composed of its sections (config/sections/<name>.ts, each
 * with its schema, defaults, resolver and cross-checks). It gives both the TypeScript types
 * (`UserConfig`, what a user writes) and the runtime check (strict: an unknown key is an error).
 * The JSDoc on each field is the reference documentation; a field's default is declared once, as
 * the schema's `prefault` (parsed like a value the user wrote), where it does not depend on
 * another field or on inheritance (server → route), which the resolver merges.
 */
import { z } from 'zod';
import { app } from './sections/app.js';
import { cacheSection } from './sections/cache.js';
import { acmeSection } from './sections/acme.js';
import { adminSection } from './sections/admin.js';
import { forward } from './sections/forward.js';
import { httpSection, logSection } from './sections/http.js';
import { limitsSection } from './sections/limits.js';
import { server } from './sections/server.js';
import { stateSection } from './sections/state.js';
import { upstream } from './sections/upstream.js';
import { entryName, show, timerDuration } from './sections/values.js';

export { duration, listenAddress, parseListen, size, type ListenAddress } from './sections/values.js';

export const configSchema = z.strictObject({
  /** Logs. */
  log: logSection.prefault({}),
  /** HTTP protocol settings for all listeners. */
  http: httpSection.prefault({}),
  /** Zones of rate and concurrency limits, referenced by `rateLimit`/`connLimit` of servers and routes (nginx `limit_req_zone`, `limit_conn_zone`). */
  limits: limitsSection.optional(),
  /** Upstream groups by name, for `proxy: { to: "name" }`. */
  upstreams: z.record(entryName, upstream).optional(),
  /** Apps by name, each on its own pool of worker processes, for routes with `app: "name"`. */
  apps: z.record(entryName, app).optional(),
  /** Response cache storage (zones); routes turn caching on with `cache`. */
  cache: cacheSection.prefault({}),
  /**
   * Edge worker processes (nginx `worker_processes`): `"auto"` is one per core; with 1, everything
   * runs in one process. With more, a supervisor owns the listening sockets and the apps' worker
   * pools, and restarts an edge worker that dies. `portico up --workers N` overrides it; when
   * neither says, the `PORTICO_WORKERS` environment variable does (as gunicorn's WEB_CONCURRENCY).
   * @default "auto"
   */
  workers: z
    .custom<'auto' | number>((value) => value === 'auto' || (typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= 1024), {
      error: (issue) => `expected "auto" or a whole number of processes 1-1024, got ${show(issue.input)}`,
    })
    .optional(),
  /**
   * On SIGTERM/SIGINT, how long requests in flight (and open WebSocket tunnels) may take before
   * what is left is closed (gunicorn `graceful_timeout`). `portico up --graceful-timeout D` overrides it.
   */
  gracefulTimeout: timerDuration().prefault('30s'),
  /**
   * Where `portico up` writes its process id, for `portico reload` and `kill -HUP $(cat FILE)`
   * (nginx `pid`); relative to the config file. `portico up --pid FILE` overrides it.
   * @default a file in the temporary folder named after the config file's path
   */
  pidFile: z.string().min(1).optional(),
  /** Automatic HTTPS for `tls: "auto"` servers: the ACME account and CA, the data folder, on-demand TLS. */
  acme: acmeSection.optional(),
  /** The admin API, Prometheus metrics and the dashboard (off unless set; `{}` listens on 127.0.0.1:2019). */
  admin: adminSection.optional(),
  /** State shared by several Portico nodes in Redis: fleet-wide limits, a shared cache and purges, ACME storage (off: each node keeps its own). */
  state: stateSection.optional(),
  /** Virtual servers, the nginx `server` blocks. Required unless `forward` is given. */
  servers: z.array(server).min(1).optional(),
  /** The forward proxy (Squid's role): its own listeners for absolute-form requests and CONNECT tunnels. */
  forward: forward.optional(),
}).superRefine((value, ctx) => {
  // A config serves something: virtual servers, a forward proxy, or both.
  if (value.servers === undefined && value.forward === undefined) ctx.addIssue({ code: 'custom', path: ['servers'], input: undefined, message: 'is required (unless "forward" is given): expected an array, got nothing' });
});

/** What a user writes in `portico.config.*` (durations and sizes as strings or numbers). */
export type UserConfig = z.input<typeof configSchema>;
/** The config after the schema: units parsed, defaults of the schema filled, not yet resolved. */
export type ParsedConfig = z.output<typeof configSchema>;
