/**
 * `portico <command>`: up | serve | proxy | app | dev | check (later: forward, reload).
 *
 * Exit codes: 0 success; 1 a runtime failure (e.g. a port cannot be opened); 2 a usage error or an
 * invalid config (the message names the field; no stack trace).
 */
import { existsSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { relative, resolve } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { Bind } from '../app/arbiter.js';
import { ConfigError } from '../config/errors.js';
import { loadConfig, findConfigFile, validateConfig, type LoadedConfig } from '../config/load.js';
import type { ResolvedConfig } from '../config/resolve.js';
import type { UserConfig } from '../config/schema.js';
import { PorticoError } from '../core/errors.js';
import { complain, createLogger, log, say, setLogger } from '../core/log.js';
import { parseDuration } from '../core/units.js';
import { EdgeServer } from '../edge/server.js';
import type { AppPools } from '../supervisor/apps.js';
import type { ExternalApps } from '../supervisor/external.js';
import { DEMO_DIR, demoConfig } from './demo.js';

const VERSION = '0.1.0';

class UsageError extends Error {}

const HELP: Record<string, string> = {
  main: `portico ${VERSION}: one server for the whole stack (static files, rewrite/redirect, and more to come)

Usage: portico <command> [options]

Commands:
  up       run a config (./portico.config.* or --config FILE; with none, the embedded demo)
  serve    serve a directory as static files, right now
  proxy    reverse-proxy to one or more upstream servers, right now
  app      run a JavaScript/TypeScript app on pre-forked workers (the gunicorn role)
  dev      run an app in one process that reloads on change (development only)
  check    validate a config and print it resolved, as JSON

Options: --help on any command, --version.
Exit codes: 0 ok, 1 runtime failure (e.g. a port in use), 2 usage error or invalid config.`,
  up: `Usage: portico up [--config FILE]

Runs the servers of a config file: FILE, or the first of portico.config.ts, .mts, .mjs, .js,
.json in the current directory. Without one, runs the embedded demo site on
http://127.0.0.1:8080 (PORT and HOST override its address).

Options:
  -c, --config FILE   the config file
  -h, --help          this help

Apps of the config (\`apps\`, routes with \`app: NAME\`) run on their own worker processes,
started once the edge has opened its ports; the edge balances over each app's workers.

Signals: SIGHUP reloads the config (an invalid one is refused and the running one keeps
serving) and rolls the app workers one at a time; SIGTERM/SIGINT stop gracefully (requests in
flight finish, up to 10 s; then the app workers drain and exit).`,
  serve: `Usage: portico serve [DIR] [--port N] [--host H] [options]

Serves DIR (default: the current directory) as static files, like \`npx serve\`.

Options:
  -p, --port N         port (default: $PORT or 8080)
  -H, --host H         address to bind (default: $HOST or 127.0.0.1; 0.0.0.0 for all)
      --listing        list directories without an index file
      --spa            serve /index.html for paths that are not files (single-page apps)
      --max-age D      Cache-Control max-age, e.g. 1h (default: none)
      --dotfiles MODE  ignore (404, default) | deny (403) | allow
      --no-access-log  do not write the access log
      --access-log F   combined (default) | json
  -h, --help           this help`,
  proxy: `Usage: portico proxy UPSTREAM... [--port N] [--host H] [options]

An instant reverse proxy (nginx proxy_pass + upstream) to the UPSTREAM servers:
"http://127.0.0.1:3000", "127.0.0.1:3000" or "unix:/run/app.sock". Keep-alive pools, retries
of idempotent requests on another server, passive health (a failing server rests 10 s).

Options:
  -p, --port N         port (default: $PORT or 8080)
  -H, --host H         address to bind (default: $HOST or 127.0.0.1)
      --balance ALG    round-robin (default) | least-conn | ip-hash | hash | random-two
      --host-header H  Host sent upstream: client (default) | upstream | a name
      --cache          cache responses (RFC 9111 shared cache, 64 MiB in memory; Cache-Status
                       header; PURGE from 127.0.0.1/::1)
      --cache-dir DIR  also keep them on disk in DIR (1 GiB bound, kept across restarts)
      --no-access-log  do not write the access log
      --access-log F   combined (default) | json
  -h, --help           this help`,
  app: `Usage: portico app FILE [--workers N] [--bind ADDR] [options]

Runs the app module FILE (.ts, .mts, .js, .mjs; no build step) on N pre-forked worker
processes, like \`gunicorn -w 4 -b 127.0.0.1:8000 app:app\`. FILE's default export is a Fetch
handler (\`{ fetch(request, context) }\` or \`(request) => Response\`: Hono), a Node listener
(\`(req, res)\`: Express, Koa app.callback(), Connect) or a Fastify instance; \`export const
gateway = 'fetch' | 'node'\` overrides the detection.

Options:
  -w, --workers N              worker processes (default: $WEB_CONCURRENCY or one per core)
  -b, --bind ADDR              HOST:PORT or unix:/path (default: $HOST:$PORT or 127.0.0.1:8000)
  -t, --timeout D              kill a worker silent this long; also each request's deadline (default 30s)
      --max-requests N         recycle a worker after N requests (default 0: never)
      --max-requests-jitter N  add 0..N to each worker's max requests (spreads recycles)
      --graceful-timeout D     time for requests in flight on stop/reload/recycle (default 30s)
  -h, --help                   this help

Signals: SIGHUP rolling reload (new worker ready, then one old one drained, one at a time);
SIGTERM/SIGINT graceful stop (a second one kills); SIGTTIN/SIGTTOU one worker more/less.
Exit codes: 0 stopped; 1 workers crash-looped (the arbiter gave up) or the address is in use;
2 usage error, missing file, or a module that exports no app.`,
  dev: `Usage: portico dev FILE [--port N] [--host H]

Runs the app module FILE in this one process, for development: it re-imports the app when a file
under FILE's directory changes, prints errors with their stack, and answers with an HTML error
page that shows the stack. Not for production (use \`portico app\`).

Options:
  -p, --port N   port (default: $PORT or 3000)
  -H, --host H   address to bind (default: $HOST or 127.0.0.1)
  -h, --help     this help`,
  check: `Usage: portico check [--config FILE]

Validates a config and prints the resolved config (defaults filled, units parsed, paths
absolute) as JSON. Exit status 0 when valid, 2 with the field path of each problem when not.

Options:
  -c, --config FILE   the config file (default: ./portico.config.*)
  -h, --help          this help`,
};

type ParsedArgs = { values: Record<string, string | boolean | undefined>; positionals: string[] };

function parse(args: string[], options: NonNullable<ParseArgsConfig['options']>, allowPositionals = false): ParsedArgs {
  try {
    return parseArgs({ args, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals, strict: true }) as ParsedArgs;
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

function portFrom(value: string | undefined, fallback: number): number {
  if (value === undefined || value === '') return fallback;
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`expected a port number 0-65535, got "${value}"`);
  return port;
}

/** Sets the error log from the config (level and destination). */
function applyLogConfig(config: ResolvedConfig): void {
  setLogger(createLogger({ level: config.log.level, destination: config.log.error }));
}

function upstreamSummary(group: ResolvedConfig['upstreams'][string] | undefined, config: ResolvedConfig): string {
  if (!group) return '?';
  if (group.app !== null && config.externalApps[group.app]) return `app ${group.app} (its command)`;
  if (group.app !== null) return `app ${group.app} (its workers, least outstanding requests)`;
  const names = group.servers.map((s) => s.url + (s.backup ? ' (backup)' : ''));
  return group.name.includes('[') ? names.join(', ') : `${group.name} [${names.join(', ')}; ${group.balance}]`;
}

function banner(server: EdgeServer, title: string, pools: AppPools | null, external: ExternalApps | null = null): void {
  say(`portico ${VERSION}: ${title}`);
  for (const address of server.addresses()) say(`  listening on ${address.url}`);
  for (const line of [...(pools?.describe() ?? []), ...(external?.describe() ?? [])]) say(`  ${line}`);
  for (const s of server.generation.config.servers) {
    say(`  server ${s.id}${s.names.length ? ` (${s.names.join(', ')})` : ''}${s.default ? ' [default]' : ''}`);
    for (const route of s.routes) {
      const m = route.match;
      const match = m.kind === 'exact' ? `= ${m.path}` : m.kind === 'prefix' ? `${m.skipRegex ? '^~ ' : ''}${m.path}` : `~${m.caseInsensitive ? '*' : ''} ${m.source}`;
      const h = route.handler;
      const action =
        h.type === 'static'
          ? `static ${h.static.root}`
          : h.type === 'redirect'
            ? `redirect ${h.status} → ${h.to}`
            : h.type === 'respond'
              ? `respond ${h.status}`
              : h.type === 'proxy'
                ? `proxy → ${upstreamSummary(server.generation.config.upstreams[h.upstream], server.generation.config)}${h.path ? ` (path ${h.path})` : ''}`
                : 'no handler (404)';
      const rewrites = route.rewrite.length ? `  [rewrite ${route.rewrite.map((r) => `${r.from} → ${r.to}${r.flag ? ` ${r.flag}` : ''}`).join('; ')}]` : '';
      const cache = route.cache ? `  [cache ${route.cache.zone}]` : '';
      say(`    ${match.padEnd(28)} ${action}${cache}${rewrites}`);
    }
  }
}

/** Runs until a signal stops it; SIGHUP reloads through `reloadConfig`. */
async function runServer(config: ResolvedConfig, title: string, reloadConfig: (() => Promise<ResolvedConfig>) | null): Promise<void> {
  applyLogConfig(config);
  // The edge binds its ports first (a port in use fails at once, before any worker boots, and the
  // ports are claimed as early as without apps), then the apps start; a request that arrives
  // while an app's workers boot waits for one (up to 5 s, see proxy/index.ts). The banner, with
  // the workers' pids, comes once every app is ready. Loaded only when the config has apps.
  let pools: AppPools | null = null;
  if (Object.keys(config.apps).length > 0) {
    const { AppPools } = await import('../supervisor/apps.js');
    pools = new AppPools(config);
    const created = pools;
    // Last resort (an exit on an error path): the socket folders go; the workers exit by
    // themselves when our IPC channels close.
    process.on('exit', () => created.removeFolders());
  }
  // External app servers (`command`): started like the apps, once the ports are bound; never
  // left running when portico exits, whatever the path (the exit hook kills their groups).
  let external: ExternalApps | null = null;
  if (Object.keys(config.externalApps).length > 0) {
    const { ExternalApps } = await import('../supervisor/external.js');
    external = new ExternalApps(config);
    const created = external;
    process.on('exit', () => created.killAll());
  }
  // Until the stop handlers below are installed (the commands may take a while to accept), a
  // SIGTERM/SIGINT would end the process without its 'exit' hook and leave the commands running.
  const early = () => process.exit(1);
  if (external) for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, early);
  const shared = new Map([...(pools?.groups ?? []), ...(external?.groups ?? [])]);
  const server = new EdgeServer(config, shared.size > 0 ? { sharedUpstreams: shared } : {});
  try {
    await server.start(); // closes what it opened when it fails
  } catch (error) {
    await pools?.stop();
    await external?.stop();
    throw error;
  }
  try {
    await Promise.all([pools?.start(), external?.start()]);
  } catch (error) {
    await server.stop(0);
    await pools?.stop();
    await external?.stop();
    throw error;
  }
  banner(server, title, pools, external);
  let current = config;
  let stopping = false;
  // The edge stops first (its requests in flight finish, on the workers too), then the apps
  // (their workers have nothing left to do, and exit).
  const stop = (signal: string, code = 0) => {
    if (stopping) return;
    stopping = true;
    log().info({ signal }, 'stopping: finishing requests in flight');
    void server
      .stop(code === 0 ? 10_000 : 0)
      .then(() => pools?.stop())
      .then(() => external?.stop())
      .then(() => process.exit(code));
  };
  if (pools) {
    pools.onHalt = (name, result) => {
      complain(`portico: app "${name}": ${result.message ?? `stopped (${result.code})`}`);
      stop('app halted', result.code || 1);
    };
  }
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.off(signal, early);
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGHUP', () => {
    if (!reloadConfig) {
      if (pools) {
        log().info('SIGHUP: nothing to reload (no config file); rolling the app workers');
        pools.reload(current);
      } else log().warn('SIGHUP: nothing to reload (no config file)');
      return;
    }
    reloadConfig()
      .then(async (next) => {
        // App pools outlive generations; one added or removed needs a restart (refused here,
        // before anything changes, like any other invalid reload).
        const refusal = pools ? pools.refusal(next) : Object.keys(next.apps).length > 0 ? 'apps added: restart portico to apply' : null;
        // An external command is not rolled by a reload: changing one needs a restart.
        const changed = JSON.stringify(next.externalApps) !== JSON.stringify(current.externalApps) ? 'apps with a "command" added, removed or changed: restart portico to apply' : null;
        if (refusal ?? changed) throw new Error((refusal ?? changed) as string);
        await server.reload(next);
        // New app code and settings: a rolling restart, one worker at a time, each new worker
        // in the edge's group before an old one leaves it.
        pools?.reload(next);
        // The error log follows the reloaded config too (its level or destination may have changed).
        if (next.log.level !== current.log.level || next.log.error !== current.log.error) {
          log().flush();
          applyLogConfig(next);
        }
        current = next;
        log().info({ source: next.source }, 'reloaded: new config serving');
      })
      .catch((error: unknown) => log().error({ problem: (error as Error).message }, 'reload refused: the running config keeps serving'));
  });
}

async function up(args: string[]): Promise<void> {
  const { values } = parse(args, { config: { type: 'string', short: 'c' } });
  if (values.help) return say(HELP.up as string);
  const path = values.config as string | undefined;
  if (!path && !findConfigFile(process.cwd())) {
    const config = validateConfig(demoConfig(portFrom(process.env.PORT, 8080), process.env.HOST || '127.0.0.1'), DEMO_DIR, null);
    return runServer(config, 'no portico.config.* here, serving the embedded demo site', null);
  }
  const loaded: LoadedConfig = await loadConfig(path);
  return runServer(loaded.config, `serving ${loaded.path}`, async () => (await loadConfig(loaded.path ?? undefined)).config);
}

async function serve(args: string[]): Promise<void> {
  const { values, positionals } = parse(
    args,
    {
      port: { type: 'string', short: 'p' },
      host: { type: 'string', short: 'H' },
      listing: { type: 'boolean' },
      spa: { type: 'boolean' },
      'max-age': { type: 'string' },
      dotfiles: { type: 'string' },
      'no-access-log': { type: 'boolean' },
      'access-log': { type: 'string' },
    },
    true,
  );
  if (values.help) return say(HELP.serve as string);
  if (positionals.length > 1) throw new UsageError(`expected at most one directory, got ${positionals.length}`);
  const port = portFrom((values.port as string | undefined) ?? process.env.PORT, 8080);
  const host = (values.host as string | undefined) ?? (process.env.HOST || '127.0.0.1');
  const access = accessLogFlags(values);
  // Flags are checked here so a mistake names the flag, not a config path the user never wrote
  // ("servers[0].static.maxAge"), and a missing directory is refused instead of serving 404s.
  const root = positionals[0] ?? '.';
  if (!statSync(resolve(root), { throwIfNoEntry: false })?.isDirectory()) throw new UsageError(`serve: expected a directory, got "${root}" (${existsSync(resolve(root)) ? 'not a directory' : 'no such file or directory'})`);
  const maxAge = values['max-age'] as string | undefined;
  if (maxAge !== undefined && parseDuration(maxAge) === undefined) throw new UsageError(`--max-age: expected a duration like "1h", got "${maxAge}"`);
  const dotfiles = values.dotfiles as string | undefined;
  if (dotfiles !== undefined && !['ignore', 'deny', 'allow'].includes(dotfiles)) throw new UsageError(`--dotfiles: expected ignore, deny or allow, got "${dotfiles}"`);
  const user: UserConfig = {
    log: { access },
    servers: [
      {
        listen: `${host.includes(':') ? `[${host}]` : host}:${port}`,
        static: {
          root,
          listing: Boolean(values.listing),
          ...(values.spa ? { tryFiles: ['$uri', '$uri/', '/index.html'] } : {}),
          ...(values['max-age'] !== undefined ? { maxAge: values['max-age'] as string } : {}),
          ...(values.dotfiles !== undefined ? { dotfiles: values.dotfiles as 'ignore' } : {}),
        },
      },
    ],
  };
  const config = validateConfig(user, process.cwd(), null);
  const handler = config.servers[0]?.routes[0]?.handler;
  return runServer(config, `serving ${handler?.type === 'static' ? handler.static.root : '?'}`, null);
}

/** `--no-access-log` / `--access-log FORMAT` → the `log.access` setting. */
function accessLogFlags(values: ParsedArgs['values']): NonNullable<UserConfig['log']>['access'] {
  if (values['no-access-log']) return false;
  const format = (values['access-log'] as string | undefined) ?? 'combined';
  if (format !== 'combined' && format !== 'json') throw new UsageError(`--access-log: expected combined or json, got "${format}"`);
  return { format, path: 'stdout' };
}

const BALANCE = ['round-robin', 'least-conn', 'ip-hash', 'hash', 'random-two'] as const;

async function proxy(args: string[]): Promise<void> {
  const { values, positionals } = parse(
    args,
    {
      port: { type: 'string', short: 'p' },
      host: { type: 'string', short: 'H' },
      balance: { type: 'string' },
      'host-header': { type: 'string' },
      cache: { type: 'boolean' },
      'cache-dir': { type: 'string' },
      'no-access-log': { type: 'boolean' },
      'access-log': { type: 'string' },
    },
    true,
  );
  if (values.help) return say(HELP.proxy as string);
  const cacheDir = values['cache-dir'] as string | undefined;
  if (cacheDir !== undefined && !values.cache) throw new UsageError('--cache-dir: expected with --cache');
  if (positionals.length === 0) throw new UsageError('proxy: expected at least one upstream, like http://127.0.0.1:3000');
  const balance = (values.balance as string | undefined) ?? 'round-robin';
  if (!(BALANCE as readonly string[]).includes(balance)) throw new UsageError(`--balance: expected one of ${BALANCE.join(', ')}, got "${balance}"`);
  const port = portFrom((values.port as string | undefined) ?? process.env.PORT, 8080);
  const host = (values.host as string | undefined) ?? (process.env.HOST || '127.0.0.1');
  // "127.0.0.1:3000" is taken as http://127.0.0.1:3000, as curl would.
  const servers = positionals.map((upstream) => (/^(https?:\/\/|unix:|uwsgi:\/\/|uwsgi\+unix:)/i.test(upstream) ? upstream : `http://${upstream}`));
  const user: UserConfig = {
    log: { access: accessLogFlags(values) },
    upstreams: { upstream: { servers, balance: balance as (typeof BALANCE)[number] } },
    ...(cacheDir !== undefined ? { cache: { dir: cacheDir } } : {}),
    servers: [
      {
        listen: `${host.includes(':') ? `[${host}]` : host}:${port}`,
        routes: [{ proxy: { to: 'upstream', ...(values['host-header'] !== undefined ? { host: values['host-header'] as string } : {}) }, ...(values.cache ? { cache: true } : {}) }],
      },
    ],
  };
  let config: ResolvedConfig;
  try {
    config = validateConfig(user, process.cwd(), null);
  } catch (error) {
    // Name the argument, not a config path the user never wrote.
    if (error instanceof ConfigError) throw new UsageError(`proxy: ${error.problems.map((p) => p.replace(/^upstreams\.upstream\.servers\[(\d+)\]/, (_m, i: string) => `upstream ${Number(i) + 1}`)).join('; ')}`);
    throw error;
  }
  const caching = values.cache ? `, caching${cacheDir !== undefined ? ` in memory and ${resolve(cacheDir)}` : ' in memory'}` : '';
  return runServer(config, `proxying to ${servers.join(', ')} (${balance}${caching})`, null);
}

async function check(args: string[]): Promise<void> {
  const { values } = parse(args, { config: { type: 'string', short: 'c' } });
  if (values.help) return say(HELP.check as string);
  const loaded = await loadConfig(values.config as string | undefined);
  say(JSON.stringify(loaded.config, null, 2));
}

/** "127.0.0.1:8000", "[::1]:8000", ":8000", "8000" or "unix:/run/app.sock". */
function parseBind(value: string, defaultHost: string): Bind {
  if (value.startsWith('unix:')) {
    const path = value.slice('unix:'.length);
    if (!path) throw new UsageError('--bind: expected unix:/path/to/socket');
    return { path: resolve(path) };
  }
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(value) ?? /^()()(\d+)$/.exec(value);
  if (!match) throw new UsageError(`--bind: expected HOST:PORT or unix:/path, got "${value}"`);
  return { host: match[1] || match[2] || defaultHost, port: portFrom(match[3], 8000) };
}

function durationFlag(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const ms = parseDuration(value);
  if (ms === undefined || ms <= 0) throw new UsageError(`--${name}: expected a duration like "30s", got "${value}"`);
  return ms;
}

function countFlag(name: string, value: string | undefined, fallback: number, min: number): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name}: expected a whole number >= ${min}, got "${value}"`);
  return n;
}

function appFile(positionals: string[], command: string): string {
  if (positionals.length !== 1) throw new UsageError(`${command}: expected one app file, like ./app.ts (got ${positionals.length})`);
  const file = resolve(positionals[0] as string);
  if (!existsSync(file)) throw new UsageError(`${command}: app file not found: ${positionals[0]} (${file})`);
  return file;
}

async function app(args: string[]): Promise<void> {
  const { values, positionals } = parse(
    args,
    {
      workers: { type: 'string', short: 'w' },
      bind: { type: 'string', short: 'b' },
      timeout: { type: 'string', short: 't' },
      'max-requests': { type: 'string' },
      'max-requests-jitter': { type: 'string' },
      'graceful-timeout': { type: 'string' },
    },
    true,
  );
  if (values.help) return say(HELP.app as string);
  const file = appFile(positionals, 'app');
  // The app server is loaded only by its commands: the edge commands never pay for it.
  const { Arbiter } = await import('../app/arbiter.js');
  const host = process.env.HOST || '127.0.0.1';
  const bind = parseBind((values.bind as string | undefined) ?? `${host.includes(':') ? `[${host}]` : host}:${portFrom(process.env.PORT, 8000)}`, host);
  const workers = countFlag('workers', (values.workers as string | undefined) ?? process.env.WEB_CONCURRENCY, availableParallelism(), 1);
  const arbiter = new Arbiter({
    file,
    workers,
    bind,
    timeoutMs: durationFlag('timeout', values.timeout as string | undefined, 30_000),
    maxRequests: countFlag('max-requests', values['max-requests'] as string | undefined, 0, 0),
    maxRequestsJitter: countFlag('max-requests-jitter', values['max-requests-jitter'] as string | undefined, 0, 0),
    gracefulTimeoutMs: durationFlag('graceful-timeout', values['graceful-timeout'] as string | undefined, 30_000),
  });
  arbiter.onReady = (address, pids) => {
    say(`portico ${VERSION}: app ${relative(process.cwd(), file) || file} (arbiter pid ${process.pid})`);
    say(`  listening on ${address}`);
    say(`  workers ${pids.length} (pids ${pids.join(', ')})`);
  };
  let result;
  try {
    result = await arbiter.run();
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    if (e.code === 'EADDRINUSE' || e.code === 'EACCES' || e.code === 'EADDRNOTAVAIL') throw new PorticoError('ERR_LISTEN', `app: cannot listen on ${'path' in bind ? `unix:${bind.path}` : `${bind.host}:${bind.port}`}: ${e.code}`);
    throw error;
  }
  if (result.message) complain(`portico: ${result.message}`);
  log().flush();
  process.exit(result.code);
}

async function dev(args: string[]): Promise<void> {
  const { values, positionals } = parse(args, { port: { type: 'string', short: 'p' }, host: { type: 'string', short: 'H' } }, true);
  if (values.help) return say(HELP.dev as string);
  const file = appFile(positionals, 'dev');
  const { DevServer } = await import('../app/dev.js');
  const port = portFrom((values.port as string | undefined) ?? process.env.PORT, 3000);
  const host = (values.host as string | undefined) ?? (process.env.HOST || '127.0.0.1');
  const server = new DevServer({ file, host, port });
  let started;
  try {
    started = await server.start();
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    if (e.code === 'EADDRINUSE' || e.code === 'EACCES' || e.code === 'EADDRNOTAVAIL') throw new PorticoError('ERR_LISTEN', `dev: cannot listen on ${host}:${port}: ${e.code}`);
    throw error;
  }
  say(`portico ${VERSION} dev: ${relative(process.cwd(), file) || file}${started.app ? ` (${started.app.kind} gateway: ${started.app.via})` : ' (failed to load, see above)'}`);
  say(`  listening on ${started.url}`);
  say('  development server: one process, reloads when a file changes, shows error stacks; not for production (use portico app)');
  const stop = () => void server.stop().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

const COMMANDS: Record<string, (args: string[]) => Promise<void>> = { up, serve, proxy, check, app, dev };

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') return say(HELP.main as string);
  if (command === '--version' || command === '-v') return say(VERSION);
  const run = COMMANDS[command];
  if (!run) throw new UsageError(`unknown command "${command}" (commands: ${Object.keys(COMMANDS).join(', ')}; see portico --help)`);
  await run(rest);
}

main(process.argv.slice(2)).catch((error: unknown) => {
  if (error instanceof ConfigError) {
    complain(`portico: ${error.message}`);
    process.exit(2);
  }
  if (error instanceof UsageError) {
    complain(`portico: ${error.message}`);
    process.exit(2);
  }
  if (error instanceof PorticoError) {
    complain(`portico: ${error.message}`);
    process.exit(error.code === 'ERR_CONFIG_NOT_FOUND' || error.code === 'ERR_CONFIG_LOAD' || error.code === 'ERR_APP_INVALID' ? 2 : 1);
  }
  complain(`portico: unexpected error: ${(error as Error)?.stack ?? String(error)}`);
  process.exit(1);
});
