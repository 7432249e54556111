/**
 * Apps run by `portico up` (top-level `apps`): a JavaScript module on pre-forked workers, or an
 * external app server (`command`), and the route action `app` that serves a route with one.
 */
import { existsSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, resolve as resolvePath } from 'node:path';
import { z } from 'zod';
import type { ResolvedApp, ResolvedExternalApp, ResolvedHandler, ResolvedUpstream } from '../resolved.js';
import { defaultUpstream } from './upstream.js';
import { listenAddress, mergeHeaders, parseListen, timerDuration, type ListenAddress } from './values.js';

/** The settings each kind of app takes; any other is refused, naming the field (it would be silently ignored). */
const KIND_KEYS = {
  module: ['workers', 'timeout', 'maxRequests', 'maxRequestsJitter'],
  wsgi: ['workers', 'timeout', 'maxRequests', 'maxRequestsJitter', 'cwd', 'python', 'threads'],
  command: ['socket', 'cwd', 'restartDelay'],
} as const;
const ALL_KIND_KEYS = [...new Set(Object.values(KIND_KEYS).flat())];
/** "module:callable" (gunicorn's APP_MODULE): dotted module names, an attribute path, optionally a factory call. */
const WSGI_SPEC = /^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*(:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*(\(\))?)?$/;

/**
 * An app run by `portico up`, served by routes with `app: NAME`. Either a JavaScript app
 * (`module`) on its own pre-forked worker processes (the `portico app` arbiter, in-process), or
 * an existing app server (`command`: gunicorn, uWSGI in HTTP mode, …) that portico starts,
 * restarts when it dies and stops, reaching it over HTTP on `socket`.
 */
export const app = z
  .strictObject({
    /** The app module (.ts, .mts, .js, .mjs); its default export is a Fetch handler, a Node listener or a Fastify instance. Relative to the config file's folder. */
    module: z.string().min(1).optional(),
    /** A Python WSGI app, "module:callable" as gunicorn takes it (`app:app`, `mysite.wsgi:application`, `app:create_app()`), run on Portico's own workers (python/portico_wsgi.py) and reached by the edge over uwsgi. */
    wsgi: z.string().regex(WSGI_SPEC, 'expected "module:callable", such as "app:app"').optional(),
    /** With `wsgi`: the Python interpreter, or a virtualenv's folder (its bin/python3 is used). Relative to the config file's folder when it has a "/". @default "python3" */
    python: z.string().min(1).optional(),
    /** With `wsgi`: requests each worker serves at once, on a thread pool (gunicorn's gthread worker); 1 serves them in the worker's main thread (its sync worker). @default 1 */
    threads: z.number().int().min(1).max(256).optional(),
    /** An external app server to run instead: the program and its arguments, no shell (`["gunicorn", "-b", "unix:/run/app.sock", "app:app"]`). */
    command: z.array(z.string().min(1)).min(1).optional(),
    /** With `command`: where it listens for HTTP, "unix:/path" or "host:port"; requests go there once it accepts connections. */
    socket: listenAddress
      .refine((text) => parseListen(text)?.kind === 'unix' || (parseListen(text) as { port: number } | undefined)?.port !== 0, 'expected a fixed port, not 0')
      .optional(),
    /** Environment variables added to portico's own for the app's processes (over `envFile`'s). `NODE_ENV` is "production" unless set here, in `envFile` or in portico's environment. */
    env: z.record(z.string(), z.string()).optional(),
    /** A `.env` file (KEY=value lines, `#` comments, quoted values) whose variables the app's processes get; relative to the config file's folder. Read each time a process starts, so a restart or reload picks up a change. */
    envFile: z.string().min(1).optional(),
    /** With `command` or `wsgi`: the working directory (a WSGI app's module is imported from there), relative to the config file's folder. @default the config file's folder */
    cwd: z.string().min(1).optional(),
    /** With `command`: the first restart delay after a crash in a row (then doubled each time, at most 30 s; the first restart is at once). @default "250ms" */
    restartDelay: timerDuration().optional(),
    /** Worker processes. @default one per core */
    workers: z.number().int().min(1).max(1024).optional(),
    /** A worker with no heartbeat for this long is killed and replaced; also each request's deadline (a JavaScript app's own 503; a WSGI app: the edge's 504, and its worker is killed). @default "30s" */
    timeout: timerDuration().optional(),
    /** A worker is recycled after this many requests (leak containment); 0 = never. @default 0 */
    maxRequests: z.number().int().min(0).optional(),
    /** Adds 0..N to each worker's `maxRequests`, so workers do not recycle at once. @default 0 */
    maxRequestsJitter: z.number().int().min(0).optional(),
    /** Time for requests in flight when a worker stops, reloads or recycles, or for a `command` to exit after SIGTERM; then SIGKILL. @default "30s" (a `command`: "10s") */
    gracefulTimeout: timerDuration().optional(),
  })
  .superRefine((value, ctx) => {
    const kinds = (['module', 'wsgi', 'command'] as const).filter((kind) => value[kind] !== undefined);
    if (kinds.length !== 1) {
      ctx.addIssue({ code: 'custom', message: `expected exactly one of "module" (a JavaScript app), "wsgi" (a Python WSGI app) or "command" (an external app server), got ${kinds.length === 0 ? 'none' : kinds.map((k) => `"${k}"`).join(' and ')}` });
      return;
    }
    const kind = kinds[0] as keyof typeof KIND_KEYS;
    const allowed: readonly string[] = KIND_KEYS[kind];
    for (const key of ALL_KIND_KEYS) {
      if (value[key] !== undefined && !allowed.includes(key)) {
        const owners = (Object.keys(KIND_KEYS) as (keyof typeof KIND_KEYS)[]).filter((k) => (KIND_KEYS[k] as readonly string[]).includes(key));
        ctx.addIssue({ code: 'custom', path: [key], input: value[key], message: `expected only with ${owners.map((k) => `"${k}"`).join(' or ')}` });
      }
    }
    if (value.command !== undefined && value.socket === undefined) ctx.addIssue({ code: 'custom', path: ['socket'], input: undefined, message: 'is required with "command": expected where it listens, "unix:/path" or "host:port", got nothing' });
  });

export type ParsedApp = z.output<typeof app>;

/**
 * An app and the upstream group its routes proxy to. The edge reaches the app's workers through
 * the proxy's own transport (undici pools over each worker's unix socket), so an `app` route is a
 * proxy route with settings fitted to local workers:
 * - `least-conn`: a worker busy with a slow request gets no new ones while others are idle
 *   (gunicorn's sync workers behind nginx have the same need);
 * - no passive marking down (maxFails 0): a worker leaves the group when the arbiter says so, not
 *   after a failure, and a crashed one is replaced at once anyway;
 * - retries on errors, not timeouts, at most 2 tries: a connect error (a worker that just died)
 *   costs nothing to retry, and an idempotent request cut by a crash is tried once more on another
 *   worker (nginx's `proxy_next_upstream error`); a slow request is never run twice, and a request
 *   that kills its worker can take down one more at most (a WSGI app: none, its requests go on
 *   only when nothing reached the worker, since a Python worker that dies takes with it what a
 *   JavaScript worker's drain would have finished);
 * - the response-head timeout outlasts the workers' own request deadline, so a slow app answers
 *   with its own 503 rather than the edge's 504.
 */
/** `envFile` as an absolute path, checked to exist now (it is read each time a process starts). */
function resolveEnvFile(name: string, parsed: ParsedApp, baseDir: string, problems: string[]): string | null {
  if (parsed.envFile === undefined) return null;
  const file = resolvePath(baseDir, parsed.envFile);
  if (!existsSync(file)) problems.push(`apps.${name}.envFile: expected a .env file, got ${JSON.stringify(parsed.envFile)} (${file}: no such file)`);
  return file;
}

/**
 * `python`: a command on PATH ("python3"), an interpreter's path, or a virtualenv's folder (its
 * bin/python3, as gunicorn's users point at their venv). A path is checked now.
 */
function resolvePython(name: string, python: string | undefined, baseDir: string, problems: string[]): string {
  if (python === undefined) return 'python3';
  if (!python.includes('/')) return python;
  const path = resolvePath(baseDir, python);
  if (existsSync(path) && statSync(path).isDirectory()) {
    const inVenv = ['bin/python3', 'bin/python'].map((bin) => join(path, bin)).find((bin) => existsSync(bin));
    if (inVenv) return inVenv;
    problems.push(`apps.${name}.python: expected an interpreter or a virtualenv folder, got ${JSON.stringify(python)} (${path} has no bin/python3)`);
    return path;
  }
  if (!existsSync(path)) problems.push(`apps.${name}.python: expected an interpreter or a virtualenv folder, got ${JSON.stringify(python)} (${path}: no such file)`);
  return path;
}

export function resolveApp(name: string, parsed: ParsedApp, baseDir: string, problems: string[]): { app: ResolvedApp; upstream: ResolvedUpstream } {
  // The schema guarantees `module` or `wsgi` unless `command` is given, which resolveExternalApp takes.
  let module: string;
  let wsgi: ResolvedApp['wsgi'] = null;
  if (parsed.wsgi !== undefined) {
    const cwd = resolvePath(baseDir, parsed.cwd ?? '.');
    if (!existsSync(cwd)) problems.push(`apps.${name}.cwd: expected the app's folder, got ${JSON.stringify(parsed.cwd)} (${cwd}: no such folder)`);
    wsgi = { spec: parsed.wsgi, python: resolvePython(name, parsed.python, baseDir, problems), cwd, threads: parsed.threads ?? 1 };
    module = parsed.wsgi;
  } else {
    module = resolvePath(baseDir, parsed.module as string);
    if (!existsSync(module)) problems.push(`apps.${name}.module: expected an app module file, got ${JSON.stringify(parsed.module)} (${module}: no such file)`);
  }
  const timeout = parsed.timeout ?? 30_000;
  const upstreamName = `app:${name}`;
  const base = defaultUpstream(upstreamName, []);
  return {
    app: {
      name,
      module,
      wsgi,
      workers: parsed.workers ?? availableParallelism(),
      timeout,
      maxRequests: parsed.maxRequests ?? 0,
      maxRequestsJitter: parsed.maxRequestsJitter ?? 0,
      gracefulTimeout: parsed.gracefulTimeout ?? 30_000,
      env: parsed.env ?? {},
      envFile: resolveEnvFile(name, parsed, baseDir, problems),
      upstream: upstreamName,
    },
    upstream: {
      ...base,
      app: name,
      balance: 'least-conn',
      // A JavaScript worker answers a request past `timeout` with its own 503; a WSGI worker
      // cannot interrupt its app, so the edge answers 504 at `timeout` and the arbiter kills it.
      headerTimeout: wsgi ? timeout : Math.max(60_000, timeout + 5_000),
      maxFails: 0,
      retry: { tries: 2, timeout: 0, onError: true, onTimeout: false, statuses: [], ...(wsgi ? { afterSend: false } : {}) },
    },
  };
}

/**
 * An external app (`command`): the group is an app group (it starts empty and gets its one member
 * once the command's socket accepts, so requests wait for it, bounded, as for workers booting),
 * with the same settings as a JavaScript app's, reached over HTTP.
 */
export function resolveExternalApp(name: string, parsed: ParsedApp, baseDir: string, problems: string[]): { app: ResolvedExternalApp; upstream: ResolvedUpstream } {
  // Only the group of a JavaScript app is taken (its module check is given an existing path).
  const { upstream } = resolveApp(name, { ...parsed, module: baseDir, envFile: undefined, wsgi: undefined }, baseDir, []);
  return {
    app: {
      name,
      command: parsed.command ?? [],
      socket: parseListen(parsed.socket as string) as ListenAddress,
      env: parsed.env ?? {},
      envFile: resolveEnvFile(name, parsed, baseDir, problems),
      cwd: resolvePath(baseDir, parsed.cwd ?? '.'),
      restartDelay: parsed.restartDelay ?? 250,
      gracefulTimeout: parsed.gracefulTimeout ?? 10_000,
      upstream: upstream.name,
    },
    upstream,
  };
}

/** Route action `app`: a proxy handler on the app's group, the request URI passed as received. */
export function resolveAppRoute(name: string, id: string, apps: ReadonlyMap<string, { readonly upstream: string }>, problems: string[]): ResolvedHandler | undefined {
  const app = apps.get(name);
  if (!app) {
    const names = [...apps.keys()];
    problems.push(`${id}.app: expected an app name (a key of "apps"${names.length ? `: ${names.map((n) => `"${n}"`).join(', ')}` : ', which has none'}), got ${JSON.stringify(name)}`);
    return undefined;
  }
  return {
    type: 'proxy',
    upstream: app.upstream,
    path: null,
    host: 'client',
    xForwarded: true,
    forwarded: false,
    via: false,
    requestHeaders: mergeHeaders(undefined, undefined),
    hideHeaders: ['server', 'x-powered-by'],
  };
}

