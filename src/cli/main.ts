/**
 * `portico <command>`: up | reload | serve | proxy | forward | app | dev | check | import | ….
 *
 * Exit codes: 0 success; 1 a runtime failure (e.g. a port cannot be opened); 2 a usage error or an
 * invalid config (the message names the field; no stack trace).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { basename, join, relative, resolve } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { Bind } from '../app/arbiter.js';
import { ConfigError } from '../config/errors.js';
import type { LoadedConfig } from '../config/load.js';
import type { ResolvedConfig } from '../config/resolved.js';
import type { UserConfig } from '../config/schema.js';
import { BALANCE_ALGORITHMS, type BalanceAlgorithm } from '../config/balance.js';
import { PorticoError } from '../core/errors.js';
import { complain, log, say } from '../core/log.js';
import { parseDuration } from '../core/units.js';
import type { NodeView, Overrides } from '../supervisor/node.js';
import { DEMO_DIR, demoConfig } from './demo.js';

/**
 * The config loader (zod schema, resolver), imported by the commands that read a config only:
 * `portico app`'s arbiter never does, and importing it cost about 17 MiB of the arbiter's RSS.
 */
const configLoader = () => import('../config/load.js');

const VERSION = '0.1.0';

class UsageError extends Error {}

const HELP: Record<string, string> = {
  main: `portico ${VERSION}: one server for the whole stack: static files, rewrite and redirect, reverse proxy with
load balancing and cache, rate and connection limits, a forward proxy, and apps on pre-forked workers

Usage: portico <command> [options]

Commands:
  up       run a config (./portico.config.* or --config FILE; with none, the embedded demo)
  reload   tell a running \`portico up\` to reload its config (like nginx -s reload)
  serve    serve a directory as static files, right now
  proxy    reverse-proxy to one or more upstream servers, right now
  app      run a JavaScript/TypeScript app on pre-forked workers (the gunicorn role)
  dev      run an app in one process that reloads on change (development only)
  forward  a forward proxy (Squid's role: http:// requests and CONNECT tunnels), right now
  check    validate a config and print it resolved, as JSON
  trust    the local CA of tls: "internal": where it is, how to trust it; as root, install it
  status   a running node through its admin API: listeners, workers, upstreams, cache, certificates
  init     write a commented starter portico.config.ts (static files, a proxy, an app) here
  import   turn an nginx configuration into a Portico config (portico import nginx.conf -o portico.config.ts)

Options: --help on any command, --version.
Exit codes: 0 ok, 1 runtime failure (e.g. a port in use), 2 usage error or invalid config.`,
  up: `Usage: portico up [--config FILE] [--workers N|auto] [--graceful-timeout D] [--pid FILE] [--watch]

Runs the servers of a config file: FILE, or the first of portico.config.ts, .mts, .mjs, .js,
.json in the current directory. Without one, runs the embedded demo site on
http://127.0.0.1:8080 (PORT and HOST override its address).

Options:
  -c, --config FILE         the config file
  -w, --workers N|auto      edge worker processes (default: the config's \`workers\`, else
                            $PORTICO_WORKERS, else one per core); 1 runs everything in one process
      --graceful-timeout D  on SIGTERM/SIGINT, time for requests in flight (default: the
                            config's \`gracefulTimeout\`, else 30s)
      --pid FILE            write the process id here (default: the config's \`pidFile\`, else
                            a file in the temporary folder named after the config file's path)
      --watch               reload when the config file (or a module it imports) changes
  -h, --help                this help

With several edge workers, this process (the supervisor) owns the listening sockets, which the
workers share, and replaces a worker that dies. Apps of the config (\`apps\`, routes with
\`app: NAME\`) run once per node on their own worker processes, started once the edge has opened
its ports; every edge worker balances over each app's workers.

Signals: SIGHUP (or \`portico reload\`) reloads the config: an invalid one is refused, logged with
its field path, and the running one keeps serving; otherwise requests in flight finish on the
old config, listeners added or removed are opened or closed, open WebSockets stay, and the app
workers roll one at a time. SIGTERM/SIGINT stop gracefully: no new connections, requests in
flight finish (up to the graceful timeout), then the app workers drain and exit; a second one
stops at once. SIGQUIT stops at once (unlike nginx, where QUIT is the graceful stop: Portico
follows gunicorn and service managers, which send SIGTERM for a graceful stop).`,
  reload: `Usage: portico reload [--config FILE] [--pid FILE]

Tells a running \`portico up\` to reload its config, like \`nginx -s reload\`: validates the
config here first (an invalid one is reported, exit status 2, and nothing is signalled), then
sends SIGHUP to the process named in the pid file: --pid FILE, else the config's \`pidFile\`
(by default a file in the temporary folder named after the config file's path, which
\`portico up\` writes). The running instance validates again and logs the outcome.

Options:
  -c, --config FILE   the config file (default: ./portico.config.*)
      --pid FILE      the pid file of the running instance
  -h, --help          this help`,
  serve: `Usage: portico serve [DIR] [--port N] [--host H] [options]

Serves DIR (default: the current directory) as static files, like \`npx serve\`.

Options:
  -p, --port N         port (default: $PORT or 8080)
  -H, --host H         address to bind (default: $HOST or 127.0.0.1; 0.0.0.0 for all)
      --listing        list directories without an index file
      --spa            serve /index.html for paths that are not files (single-page apps)
      --max-age D      Cache-Control max-age, e.g. 1h (default: none)
      --dotfiles MODE  ignore (404, default) | deny (403) | allow
      --compress       gzip/brotli text responses on the fly (config \`encode: true\`)
      --tls-cert FILE  serve HTTPS (HTTP/2 and HTTP/1.1) with this PEM certificate (chain after the leaf)
      --tls-key FILE   its PEM private key
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
      --balance ALG    ${BALANCE_ALGORITHMS.join(' | ')} (default: ${BALANCE_ALGORITHMS[0]})
      --host-header H  Host sent upstream: client (default) | upstream | a name
      --cache          cache responses (RFC 9111 shared cache, 64 MiB in memory; Cache-Status
                       header; PURGE from 127.0.0.1/::1)
      --cache-dir DIR  also keep them on disk in DIR (1 GiB bound, kept across restarts)
      --compress       gzip/brotli text responses on the fly (config \`encode: true\`)
      --tls-cert FILE  serve HTTPS (HTTP/2 and HTTP/1.1) with this PEM certificate (chain after the leaf)
      --tls-key FILE   its PEM private key
      --no-access-log  do not write the access log
      --access-log F   combined (default) | json
  -h, --help           this help`,
  app: `Usage: portico app FILE [--workers N] [--bind ADDR] [options]
       portico app --wsgi MODULE:CALLABLE [--workers N] [--bind ADDR] [options]

Runs the app module FILE (.ts, .mts, .js, .mjs; no build step) on N pre-forked worker
processes, like \`gunicorn -w 4 -b 127.0.0.1:8000 app:app\`. FILE's default export is a Fetch
handler (\`{ fetch(request, context) }\` or \`(request) => Response\`: Hono), a Node listener
(\`(req, res)\`: Express, Koa app.callback(), Connect) or a Fastify instance; \`export const
gateway = 'fetch' | 'node'\` overrides the detection.

With --wsgi, runs a Python WSGI app (Flask, Django…) on N pre-forked Python workers behind
Portico's edge, like \`gunicorn -w 4 -b 127.0.0.1:8000 app:app\`: the edge answers HTTP on
--bind and sends each request to the least busy worker over uwsgi.

Options:
  -w, --workers N              worker processes (default: $WEB_CONCURRENCY or one per core)
  -b, --bind ADDR              HOST:PORT or unix:/path (default: $HOST:$PORT or 127.0.0.1:8000)
  -t, --timeout D              kill a worker silent this long; also each request's deadline (default 30s;
                               WSGI: a request running longer gets 504 and its worker is killed)
      --wsgi M:C               the WSGI app, "module:callable" as gunicorn takes it (app:app)
      --python P               WSGI: the interpreter or a virtualenv folder (default python3)
      --threads N              WSGI: requests each worker serves at once on threads (default 1)
      --chdir DIR              WSGI: the app's folder, imported from (default: the current one)
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
  forward: `Usage: portico forward [--port N] [--host H] [--allow CIDR]... [options]

A forward proxy (Squid's role): clients configured with it (curl -x, a browser's proxy
setting) send http:// requests and CONNECT tunnels (https) through it. Never an open proxy:
only allowed clients are served (default: loopback), private, loopback, link-local, CGNAT and
cloud-metadata destinations are refused (also when a name resolves to them), and CONNECT goes
to port 443 only, unless the options below say otherwise. Refusals are 403 with the reason.

Options:
  -p, --port N            port (default: $PORT or 3128)
  -H, --host H            address to bind (default: $HOST or 127.0.0.1; 0.0.0.0 for all)
      --allow CIDR        clients that may use the proxy (repeatable; default 127.0.0.0/8 and ::1)
      --allow-dest X      a destination the default deny would refuse: a host name,
                          "*.example.com", an address or a CIDR block (repeatable)
      --deny-dest X       a destination always refused (repeatable)
      --connect-port P    a port CONNECT may reach, or a range "8000-8999" (repeatable; default 443)
      --htpasswd FILE     require proxy authentication (Basic) by the users of FILE
      --realm R           the realm of the authentication challenge (default "portico")
      --cache             cache cacheable http:// responses (RFC 9111 shared cache, 64 MiB in
                          memory; Cache-Status header; PURGE http://... from 127.0.0.1/::1)
      --cache-dir DIR     also keep them on disk in DIR (1 GiB bound, kept across restarts)
      --no-access-log     do not write the access log
      --access-log F      combined (default) | json
  -h, --help              this help`,
  init: `Usage: portico init [DIR] [--force]

Writes a commented starter portico.config.ts into DIR (default: the current directory): static
files from ./public, a reverse proxy for /api/, and an app (./app.ts) on pre-forked workers for
/app/, with the folder and the app module it names. Files already there are kept; an existing
portico.config.ts is refused unless --force. Then: portico up.`,
  check: `Usage: portico check [--config FILE]

Validates a config and prints the resolved config (defaults filled, units parsed, paths
absolute) as JSON. Exit status 0 when valid, 2 with the field path of each problem when not.

Options:
  -c, --config FILE   the config file (default: ./portico.config.*)
  -h, --help          this help`,
  import: `Usage: portico import NGINX_CONF [-o FILE] [--strict]

Reads an nginx configuration (its includes too) and writes the Portico config that does the same:
servers and locations, root/alias/index/try_files, return and rewrite, proxy_pass and upstream
blocks, uwsgi_pass, limits, allow/deny, auth_basic, gzip, expires, add_header, the proxy cache,
TLS certificates. FILE ending in .json gets JSON; otherwise a commented portico.config.ts, each
server, route and upstream under the nginx block it came from. Without -o, the config goes to
stdout.

Every directive it does not translate is reported on stderr with its file, line and why (and
listed at the top of a .ts file); none is dropped silently. The result is then checked as
\`portico check\` would, and what it would refuse is reported too. See docs/migrating.md.

Options:
  -o, --output FILE   write the config here (.ts, .mts, .mjs, .js or .json)
      --strict        exit with status 2 when anything was not translated or the check fails
  -h, --help          this help

Exit codes: 0 written (reported directives and check problems are warnings), 2 a syntax error in
the nginx files, or with --strict any warning.`,
  status: `Usage: portico status [--config FILE] [--admin URL] [--token TOKEN] [--json]

Shows a running node through its admin API (the config's \`admin\` section): listeners, edge
workers, apps, upstream servers (up, down, drained), cache zones and certificates.

Options:
  -c, --config FILE   the config whose \`admin\` names the API (default: ./portico.config.*)
  --admin URL         the admin API itself: http://127.0.0.1:2019 or unix:/path.sock
  --token TOKEN       its bearer token (default: the config's admin.token, or PORTICO_ADMIN_TOKEN)
  --json              print GET /status and GET /upstreams as JSON
  -h, --help          this help`,
  trust: `Usage: portico trust [--config FILE] [--data-dir DIR] [--no-install]

Prints the local CA that issues the certificates of \`tls: "internal"\` servers (made now in the
data folder if it is not there yet; with the config's \`state\`, in the fleet's Redis, and copied
to the data folder) and how to trust it (curl, Node.js, the system store, the
browsers' NSS store). Run as root on Debian/Ubuntu, it also installs it in the system store
(/usr/local/share/ca-certificates, then update-ca-certificates).

Options:
  -c, --config FILE   the config whose acme.dataDir holds the CA (default: ./portico.config.* if any)
  --data-dir DIR      the data folder itself (default: the config's, else /var/lib/portico for root,
                      ~/.local/share/portico for a user)
  --no-install        print only, even as root
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

function upstreamSummary(group: ResolvedConfig['upstreams'][string] | undefined, config: ResolvedConfig): string {
  if (!group) return '?';
  if (group.app !== null && config.externalApps[group.app]) return `app ${group.app} (its command)`;
  if (group.app !== null) return `app ${group.app} (its workers, least outstanding requests)`;
  const names = group.servers.map((s) => s.url + (s.backup ? ' (backup)' : ''));
  return group.name.includes('[') ? names.join(', ') : `${group.name} [${names.join(', ')}; ${group.balance}]`;
}

/**
 * The startup banner, written to stdout in one write: a reader of the pipe (a test, a process
 * manager's log) then never sees its first line without the rest.
 */
function banner(title: string, view: NodeView): void {
  const config = view.config;
  const lines: string[] = [];
  const add = (line: string): number => lines.push(line);
  add(`portico ${VERSION}: ${title}`);
  for (const address of view.addresses) if (address.kind === 'site') add(`  listening on ${address.url}`);
  const forward = config.forward;
  if (forward) {
    const ports = forward.connectPorts.map(([low, high]) => (low === high ? String(low) : `${low}-${high}`)).join(', ');
    const zone = forward.cache ? config.cache.zones[forward.cache.zone] : undefined;
    const cache = zone ? `; caching in zone "${zone.name}" (${zone.dir === null ? 'memory' : `memory and ${zone.dir}`})` : '';
    for (const address of view.addresses.filter((a) => a.kind === 'forward')) {
      add(`  forward proxy on ${address.url} (clients ${forward.allow.join(', ')}; CONNECT ports ${ports}${forward.allowDest.length ? `; also reaches ${forward.allowDest.join(', ')}` : ''}${forward.auth ? `; users of ${forward.auth.htpasswd}` : ''}${cache})`);
    }
  }
  for (const line of view.processes) add(`  ${line}`);
  for (const s of config.servers) {
    add(`  server ${s.id}${s.names.length ? ` (${s.names.join(', ')})` : ''}${s.default ? ' [default]' : ''}`);
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
                ? `proxy → ${upstreamSummary(config.upstreams[h.upstream], config)}${h.path ? ` (path ${h.path})` : ''}`
                : 'no handler (404)';
      const rewrites = route.rewrite.length ? `  [rewrite ${route.rewrite.map((r) => `${r.from} → ${r.to}${r.flag ? ` ${r.flag}` : ''}`).join('; ')}]` : '';
      const cache = route.cache ? `  [cache ${route.cache.zone}]` : '';
      add(`    ${match.padEnd(28)} ${action}${cache}${rewrites}`);
    }
  }
  say(lines.join('\n'));
}

/** Runs a config until a signal stops it (src/supervisor/node.ts: reload, stop, edge workers). */
async function runServer(config: ResolvedConfig, title: string, options: { loaded?: LoadedConfig; overrides?: Overrides; watch?: boolean } = {}): Promise<void> {
  const overrides = options.overrides ?? {};
  const source = options.loaded?.path ?? null;
  // Loaded here, not at the top: `portico app` (the arbiter process) never runs the edge, and
  // importing it (undici, the handlers) cost about 30 MiB of the arbiter's RSS.
  const { applyOverrides, runNode } = await import('../supervisor/node.js');
  await runNode({
    config: applyOverrides(config, overrides),
    load: source ? async () => (await configLoader()).loadConfig(source) : null,
    overrides,
    watch: options.watch ?? false,
    dependencies: options.loaded?.dependencies ?? [],
    announce: (view) => banner(title, view),
  });
}

/** `--workers N|auto`. */
function workersFlag(value: string | undefined): number | 'auto' | undefined {
  if (value === undefined) return undefined;
  if (value === 'auto') return 'auto';
  return countFlag('workers', value, 1, 1);
}

async function up(args: string[]): Promise<void> {
  const { values } = parse(args, {
    config: { type: 'string', short: 'c' },
    workers: { type: 'string', short: 'w' },
    'graceful-timeout': { type: 'string' },
    pid: { type: 'string' },
    watch: { type: 'boolean' },
  });
  if (values.help) return say(HELP.up as string);
  const path = values.config as string | undefined;
  const workers = workersFlag(values.workers as string | undefined);
  const graceful = values['graceful-timeout'] as string | undefined;
  const overrides: Overrides = {
    ...(workers !== undefined ? { workers } : {}),
    ...(graceful !== undefined ? { gracefulTimeout: durationFlag('graceful-timeout', graceful, 30_000, true) } : {}),
    ...(values.pid !== undefined ? { pidFile: resolve(values.pid as string) } : {}),
  };
  const { findConfigFile, loadConfig, validateConfig } = await configLoader();
  if (!path && !findConfigFile(process.cwd())) {
    if (values.watch) throw new UsageError('--watch: there is no config file to watch (the embedded demo runs)');
    const config = validateConfig(demoConfig(portFrom(process.env.PORT, 8080), process.env.HOST || '127.0.0.1'), DEMO_DIR, null);
    return runServer(config, 'no portico.config.* here, serving the embedded demo site', { overrides });
  }
  const loaded: LoadedConfig = await loadConfig(path);
  return runServer(loaded.config, `serving ${loaded.path}`, { loaded, overrides, watch: Boolean(values.watch) });
}

/** Whether `pid` is a live portico process (its command line names portico, where /proc says). */
function isPortico(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    return /portico/.test(readFileSync(`/proc/${pid}/cmdline`, 'utf8'));
  } catch {
    return true; // no /proc here: the signal check is all we have
  }
}

/**
 * `portico reload`, as `nginx -s reload`: validates the config here first (an invalid one is
 * reported and nothing is signalled), then sends SIGHUP to the running instance, found through its
 * pid file: `--pid FILE`, else the config's `pidFile` (by default one named after the config
 * file's path, which `portico up` writes).
 */
async function reloadCommand(args: string[]): Promise<void> {
  const { values } = parse(args, { config: { type: 'string', short: 'c' }, pid: { type: 'string' } });
  if (values.help) return say(HELP.reload as string);
  const loaded = await (await configLoader()).loadConfig(values.config as string | undefined);
  const pidFile = values.pid !== undefined ? resolve(values.pid as string) : loaded.config.pidFile;
  if (!pidFile) throw new UsageError('reload: no pid file: pass --pid FILE');
  let text: string;
  try {
    text = readFileSync(pidFile, 'utf8').trim();
  } catch {
    throw new PorticoError('ERR_CONFIG_NOT_FOUND', `reload: no running portico: pid file ${pidFile} not found (is \`portico up\` running with this config? --pid FILE names another)`);
  }
  const pid = Number(text);
  if (!Number.isInteger(pid) || pid <= 0) throw new PorticoError('ERR_CONFIG_LOAD', `reload: pid file ${pidFile} holds "${text.slice(0, 40)}", not a process id`);
  if (!isPortico(pid)) throw new PorticoError('ERR_LISTEN', `reload: no running portico: pid ${pid} (from ${pidFile}) is not a live portico process`);
  process.kill(pid, 'SIGHUP');
  say(`portico: reload signalled to pid ${pid} (SIGHUP); the result is in its error log`);
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
      compress: { type: 'boolean' },
      'no-access-log': { type: 'boolean' },
      'access-log': { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
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
        ...tlsFlags(values),
        ...(values.compress ? { encode: true } : {}),
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
  const config = validateFlags(user, (await configLoader()).validateConfig, 'serve');
  const handler = config.servers[0]?.routes[0]?.handler;
  // An instant command: one process (like `npx serve`), unless --workers says otherwise.
  return runServer(config, `serving ${handler?.type === 'static' ? handler.static.root : '?'}`, { overrides: { workers: 1 } });
}

/** `--tls-cert FILE --tls-key FILE` → a server's `tls` (both or neither). */
function tlsFlags(values: ParsedArgs['values']): { tls?: { cert: string; key: string } } {
  const cert = values['tls-cert'] as string | undefined;
  const key = values['tls-key'] as string | undefined;
  if (cert === undefined && key === undefined) return {};
  if (cert === undefined) throw new UsageError('--tls-key: expected with --tls-cert FILE');
  if (key === undefined) throw new UsageError('--tls-cert: expected with --tls-key FILE');
  return { tls: { cert, key } };
}

/** A quick command's config, checked; a problem names the flag, not a config path the user never wrote. */
function validateFlags(user: UserConfig, validate: (input: unknown, baseDir: string, source: string | null) => ResolvedConfig, command: string): ResolvedConfig {
  try {
    return validate(user, process.cwd(), null);
  } catch (error) {
    if (error instanceof ConfigError) {
      throw new UsageError(`${command}: ${error.problems.map((p) => p.replace(/^servers\[0\]\.tls\.cert/, '--tls-cert').replace(/^servers\[0\]\.tls\.key/, '--tls-key').replace(/^upstreams\.upstream\.servers\[(\d+)\]/, (_m, i: string) => `upstream ${Number(i) + 1}`)).join('; ')}`);
    }
    throw error;
  }
}

/** `--no-access-log` / `--access-log FORMAT` → the `log.access` setting. */
function accessLogFlags(values: ParsedArgs['values']): NonNullable<UserConfig['log']>['access'] {
  if (values['no-access-log']) return false;
  const format = (values['access-log'] as string | undefined) ?? 'combined';
  if (format !== 'combined' && format !== 'json') throw new UsageError(`--access-log: expected combined or json, got "${format}"`);
  return { format, path: 'stdout' };
}

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
      compress: { type: 'boolean' },
      'no-access-log': { type: 'boolean' },
      'access-log': { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
    },
    true,
  );
  if (values.help) return say(HELP.proxy as string);
  const cacheDir = values['cache-dir'] as string | undefined;
  if (cacheDir !== undefined && !values.cache) throw new UsageError('--cache-dir: expected with --cache');
  if (positionals.length === 0) throw new UsageError('proxy: expected at least one upstream, like http://127.0.0.1:3000');
  const balance = (values.balance as string | undefined) ?? 'round-robin';
  if (!(BALANCE_ALGORITHMS as readonly string[]).includes(balance)) throw new UsageError(`--balance: expected one of ${BALANCE_ALGORITHMS.join(', ')}, got "${balance}"`);
  const port = portFrom((values.port as string | undefined) ?? process.env.PORT, 8080);
  const host = (values.host as string | undefined) ?? (process.env.HOST || '127.0.0.1');
  // "127.0.0.1:3000" is taken as http://127.0.0.1:3000, as curl would.
  const servers = positionals.map((upstream) => (/^(https?:\/\/|unix:|uwsgi:\/\/|uwsgi\+unix:)/i.test(upstream) ? upstream : `http://${upstream}`));
  const user: UserConfig = {
    log: { access: accessLogFlags(values) },
    upstreams: { upstream: { servers, balance: balance as BalanceAlgorithm } },
    ...(cacheDir !== undefined ? { cache: { dir: cacheDir } } : {}),
    servers: [
      {
        listen: `${host.includes(':') ? `[${host}]` : host}:${port}`,
        ...tlsFlags(values),
        ...(values.compress ? { encode: true } : {}),
        routes: [{ proxy: { to: 'upstream', ...(values['host-header'] !== undefined ? { host: values['host-header'] as string } : {}) }, ...(values.cache ? { cache: true } : {}) }],
      },
    ],
  };
  // A problem names the argument (upstream 2, --tls-cert), not a config path the user never wrote.
  const config = validateFlags(user, (await configLoader()).validateConfig, 'proxy');
  const caching = values.cache ? `, caching${cacheDir !== undefined ? ` in memory and ${resolve(cacheDir)}` : ' in memory'}` : '';
  return runServer(config, `proxying to ${servers.join(', ')} (${balance}${caching})`, { overrides: { workers: 1 } });
}

async function forward(args: string[]): Promise<void> {
  const { values } = parse(args, {
    port: { type: 'string', short: 'p' },
    host: { type: 'string', short: 'H' },
    allow: { type: 'string', multiple: true },
    'allow-dest': { type: 'string', multiple: true },
    'deny-dest': { type: 'string', multiple: true },
    'connect-port': { type: 'string', multiple: true },
    htpasswd: { type: 'string' },
    realm: { type: 'string' },
    cache: { type: 'boolean' },
    'cache-dir': { type: 'string' },
    'no-access-log': { type: 'boolean' },
    'access-log': { type: 'string' },
  });
  if (values.help) return say(HELP.forward as string);
  const cacheDir = values['cache-dir'] as string | undefined;
  if (cacheDir !== undefined && !values.cache) throw new UsageError('--cache-dir: expected with --cache');
  const list = (name: string): string[] | undefined => values[name] as unknown as string[] | undefined;
  const port = portFrom((values.port as string | undefined) ?? process.env.PORT, 3128);
  const host = (values.host as string | undefined) ?? (process.env.HOST || '127.0.0.1');
  const htpasswd = values.htpasswd as string | undefined;
  if (values.realm !== undefined && htpasswd === undefined) throw new UsageError('--realm: expected only with --htpasswd');
  const user: UserConfig = {
    log: { access: accessLogFlags(values) },
    ...(cacheDir !== undefined ? { cache: { dir: cacheDir } } : {}),
    forward: {
      listen: `${host.includes(':') ? `[${host}]` : host}:${port}`,
      ...(list('allow') ? { allow: list('allow') } : {}),
      ...(list('allow-dest') ? { allowDest: list('allow-dest') } : {}),
      ...(list('deny-dest') ? { denyDest: list('deny-dest') } : {}),
      ...(list('connect-port') ? { connectPorts: list('connect-port')?.map((p) => (/^\d+$/.test(p) ? Number(p) : p)) } : {}),
      ...(htpasswd !== undefined ? { auth: { htpasswd, ...(values.realm !== undefined ? { realm: values.realm as string } : {}) } } : {}),
      ...(values.cache ? { cache: true } : {}),
    },
  };
  let config: ResolvedConfig;
  try {
    config = (await configLoader()).validateConfig(user, process.cwd(), null);
  } catch (error) {
    // Name the flag, not a config path the user never wrote.
    const FLAGS: Record<string, string> = { allow: '--allow', allowDest: '--allow-dest', denyDest: '--deny-dest', connectPorts: '--connect-port', listen: '--host', auth: '--htpasswd' };
    if (error instanceof ConfigError) throw new UsageError(`forward: ${error.problems.map((p) => p.replace(/^forward\.(\w+)(?:\[\d+\])?(?:\.\w+)?/, (_m, key: string) => FLAGS[key] ?? key)).join('; ')}`);
    throw error;
  }
  return runServer(config, 'forward proxy', { overrides: { workers: 1 } });
}

async function check(args: string[]): Promise<void> {
  const { values } = parse(args, { config: { type: 'string', short: 'c' } });
  if (values.help) return say(HELP.check as string);
  const loaded = await (await configLoader()).loadConfig(values.config as string | undefined);
  // Warnings (an expired certificate…) go to stderr: stdout stays the resolved JSON alone.
  for (const warning of loaded.config.warnings) complain(`portico: warning: ${warning}`);
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

function durationFlag(name: string, value: string | undefined, fallback: number, allowZero = false): number {
  if (value === undefined) return fallback;
  const ms = parseDuration(value);
  if (ms === undefined || ms < 0 || (ms === 0 && !allowZero)) throw new UsageError(`--${name}: expected a duration like "30s", got "${value}"`);
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
      wsgi: { type: 'string' },
      python: { type: 'string' },
      threads: { type: 'string' },
      chdir: { type: 'string' },
    },
    true,
  );
  if (values.help) return say(HELP.app as string);
  if (values.wsgi !== undefined) return wsgiApp(values, positionals);
  for (const flag of ['python', 'threads', 'chdir'] as const) if (values[flag] !== undefined) throw new UsageError(`--${flag}: expected with --wsgi`);
  const file = appFile(positionals, 'app');
  // The app server is loaded only by its commands: the edge commands never pay for it.
  const { Arbiter } = await import('../app/arbiter.js');
  const host = process.env.HOST || '127.0.0.1';
  const bind = parseBind((values.bind as string | undefined) ?? `${host.includes(':') ? `[${host}]` : host}:${portFrom(process.env.PORT, 8000)}`, host);
  const workers = countFlag('workers', (values.workers as string | undefined) ?? process.env.WEB_CONCURRENCY, availableParallelism(), 1);
  const arbiter = new Arbiter({
    file,
    name: basename(file).replace(/\.[cm]?[jt]s$/, ''),
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

/**
 * `portico app --wsgi`: gunicorn's command line on Portico's parts. A WSGI worker speaks uwsgi
 * on a socket of its own, so the answer on --bind comes from the edge (in this process) in front
 * of the app's pool: the same config `portico up` runs, made from the flags.
 */
async function wsgiApp(values: ParsedArgs['values'], positionals: string[]): Promise<void> {
  if (positionals.length > 0) throw new UsageError(`app: expected no FILE with --wsgi (got ${positionals.join(' ')})`);
  const spec = values.wsgi as string;
  const host = process.env.HOST || '127.0.0.1';
  const bind = (values.bind as string | undefined) ?? `${host.includes(':') ? `[${host}]` : host}:${portFrom(process.env.PORT, 8000)}`;
  const name = spec.split(':')[0]?.replace(/\W/g, '_').slice(0, 40) || 'wsgi';
  const duration = (flag: string, fallback: number) => durationFlag(flag, values[flag] as string | undefined, fallback);
  const user: UserConfig = {
    log: { access: false },
    apps: {
      [name]: {
        wsgi: spec,
        cwd: resolve((values.chdir as string | undefined) ?? '.'),
        ...(values.python !== undefined ? { python: values.python as string } : {}),
        threads: countFlag('threads', values.threads as string | undefined, 1, 1),
        workers: countFlag('workers', (values.workers as string | undefined) ?? process.env.WEB_CONCURRENCY, availableParallelism(), 1),
        timeout: `${duration('timeout', 30_000)}ms`,
        maxRequests: countFlag('max-requests', values['max-requests'] as string | undefined, 0, 0),
        maxRequestsJitter: countFlag('max-requests-jitter', values['max-requests-jitter'] as string | undefined, 0, 0),
        gracefulTimeout: `${duration('graceful-timeout', 30_000)}ms`,
      },
    },
    servers: [{ listen: bind.startsWith('unix:') ? `unix:${resolve(bind.slice(5))}` : bind, routes: [{ app: name }] }],
  };
  const problems = (error: unknown) => (error instanceof UsageError ? error.message.replace(`apps.${name}.wsgi`, '--wsgi').replace(`apps.${name}.python`, '--python').replace(`apps.${name}.cwd`, '--chdir').replace('servers[0].listen', '--bind') : null);
  let config: ResolvedConfig;
  try {
    config = validateFlags(user, (await configLoader()).validateConfig, 'app');
  } catch (error) {
    const message = problems(error);
    throw message === null ? error : new UsageError(message);
  }
  return runServer(config, `WSGI app ${spec}`, { overrides: { workers: 1 } });
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

async function init(args: string[]): Promise<void> {
  const { values, positionals } = parse(args, { force: { type: 'boolean' } }, true);
  if (values.help) return say(HELP.init as string);
  if (positionals.length > 1) throw new UsageError(`init: expected at most one folder, got ${positionals.length}`);
  const dir = resolve(positionals[0] ?? '.');
  const { writeStarter } = await import('./init.js');
  let result;
  try {
    result = writeStarter(dir, Boolean(values.force));
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const where = relative(process.cwd(), dir) || '.';
  for (const name of result.written) say(`wrote ${join(where, name)}`);
  for (const name of result.kept) say(`kept ${join(where, name)} (there already)`);
  say(`next: ${where === '.' ? '' : `cd ${where} && `}npx portico up   (then open http://127.0.0.1:8080)`);
}

async function trustCommand(args: string[]): Promise<void> {
  const { values } = parse(args, { config: { type: 'string', short: 'c' }, 'data-dir': { type: 'string' }, 'no-install': { type: 'boolean' } });
  if (values.help) return say(HELP.trust as string);
  let dataDir = values['data-dir'] === undefined ? undefined : resolve(values['data-dir'] as string);
  const loader = await configLoader();
  // The config (named, or found here): its data folder, and its shared state, where a fleet's CA lives.
  const found = values.config !== undefined || loader.findConfigFile(process.cwd()) !== undefined;
  const config = found ? (await loader.loadConfig(values.config as string | undefined)).config : null;
  dataDir ??= config ? config.acme.dataDir : (await import('../config/sections/acme.js')).defaultDataDir();
  const { trust } = await import('./trust.js');
  const result = await trust(dataDir, !values['no-install'], config?.state ?? null);
  for (const line of result.lines) say(line);
}

async function statusCommand(args: string[]): Promise<void> {
  const { values } = parse(args, { config: { type: 'string', short: 'c' }, admin: { type: 'string' }, token: { type: 'string' }, json: { type: 'boolean' } });
  if (values.help) return say(HELP.status as string);
  const { adminGet, adminTarget, renderStatus } = await import('./status.js');
  let target: { url: string; token: string | null };
  if (values.admin !== undefined) target = { url: values.admin as string, token: null };
  else {
    const { config } = await (await configLoader()).loadConfig(values.config as string | undefined);
    if (config.admin === null) throw new UsageError(`status: the config (${config.source ?? 'embedded'}) has no "admin" section; add admin: {} (127.0.0.1:2019) or pass --admin URL`);
    target = adminTarget(config.admin);
  }
  const token = (values.token as string | undefined) ?? target.token ?? process.env.PORTICO_ADMIN_TOKEN ?? null;
  const withToken = { url: target.url, token };
  let status: unknown;
  let upstreams: unknown;
  try {
    [status, upstreams] = await Promise.all([adminGet(withToken, '/status'), adminGet(withToken, '/upstreams')]);
  } catch (error) {
    throw new PorticoError('ERR_ADMIN', `status: ${(error as Error).message}`);
  }
  if (values.json) return say(JSON.stringify({ status, upstreams }, null, 2));
  say(renderStatus(status as Record<string, unknown>, upstreams as Record<string, unknown>).join('\n'));
}

async function importCommand(args: string[]): Promise<void> {
  const { values, positionals } = parse(args, { output: { type: 'string', short: 'o' }, strict: { type: 'boolean' } }, true);
  if (values.help) return say(HELP.import as string);
  const file = positionals[0];
  if (file === undefined || positionals.length > 1) throw new UsageError('import: expected one nginx config file (portico import /etc/nginx/nginx.conf -o portico.config.ts)');
  const { importNginx, NginxSyntaxError } = await import('../import/nginx/index.js');
  let result;
  try {
    result = importNginx(file, (values.output as string | undefined) ?? null);
  } catch (error) {
    if (error instanceof NginxSyntaxError || (error as NodeJS.ErrnoException).code === 'ENOENT') throw new UsageError(`import: ${(error as Error).message}`);
    throw error;
  }
  for (const warning of result.warnings) complain(`portico: import: ${warning.file}:${warning.line}: ${warning.directive}: not translated: ${warning.reason}`);
  for (const problem of result.problems) complain(`portico: import: the result would be refused by portico check: ${problem}`);
  for (const warning of result.checkWarnings) complain(`portico: import: warning: ${warning}`);
  if (values.output === undefined) process.stdout.write(result.text);
  const where = values.output === undefined ? 'the config above' : (values.output as string);
  complain(`portico: import: wrote ${where}: ${result.warnings.length} directive(s) not translated, ${result.kept.length} with nothing to set (Portico does them itself)${result.problems.length > 0 ? `, ${result.problems.length} problem(s) portico check would refuse` : ''}`);
  if (values.strict && (result.warnings.length > 0 || result.problems.length > 0)) process.exitCode = 2;
}

const COMMANDS: Record<string, (args: string[]) => Promise<void>> = { up, reload: reloadCommand, serve, proxy, forward, check, app, dev, init, import: importCommand, trust: trustCommand, status: statusCommand };

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
