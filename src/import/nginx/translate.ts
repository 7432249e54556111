/**
 * An nginx configuration (parse.ts's tree) as a Portico config. nginx's inheritance is applied
 * here, level by level (http → server → location), as nginx merges its configurations: most
 * settings inherit field by field, which Portico does too (server → route), so they are written
 * where nginx has them; `add_header`, `proxy_set_header`, `allow`/`deny`, `limit_req` and
 * `limit_conn` are replaced as a whole by a level that has its own, so the headers are written on
 * each route with what that route really gets.
 *
 * Every directive ends in one of three lists: translated (into the config), `kept` (nothing to
 * set: Portico does it itself, said why) or `warnings` (not translated, said why, with file and
 * line). None is dropped silently.
 */
import { readFileSync } from 'node:fs';
import { extname, isAbsolute, join, relative } from 'node:path';
import mime from 'mime-types';
import { TEMPLATE_VARIABLES } from '../../core/template.js';
import { parseDuration, parseSize } from '../../core/units.js';
import { STOCK_INCLUDES, type Directive } from './parse.js';

export interface ImportFinding {
  readonly file: string;
  readonly line: number;
  /** The directive as written: `name arg…`. */
  readonly directive: string;
  readonly reason: string;
}

export interface ImportResult {
  /** The Portico config (what `portico.config.json` holds). */
  readonly config: Record<string, unknown>;
  /** Directives not translated: the config means something else there, or nothing. */
  readonly warnings: ImportFinding[];
  /** Directives with nothing to set: Portico does that by itself. */
  readonly kept: ImportFinding[];
}

export interface ImportOptions {
  /** nginx's prefix: the main file's folder, which relative paths in the config start from. */
  readonly prefix: string;
  /** Where the Portico config will be written: paths in it are made relative to this folder. */
  readonly outputDir: string;
}

type Json = Record<string, unknown>;

/** Where a part of the config came from, for the comment the emitter writes above it (emit.ts). */
export const SOURCE = '__source';
const from = (d: Directive) => `${show(d)} (${d.file}:${d.line})`;

const show = (d: Directive) => [d.name, ...d.args.map((arg) => (arg === '' || /[\s;{}"']/.test(arg) ? JSON.stringify(arg) : arg))].join(' ');

/** What a level (http, server, location) has, after inheriting from the level above. */
interface Scope {
  root: string | null;
  alias: string | null;
  aliasDirective: Directive | null;
  index: string[] | null;
  expires: Directive | null;
  /** Lists nginx replaces as a whole when a level has its own. */
  addHeaders: Directive[];
  proxySetHeaders: Directive[];
  access: Json[];
  rateLimits: Json[];
  connLimits: Json[];
  proxyHideHeaders: string[];
  basicAuth: Json | false | null;
  authRealm: string | null;
  authFile: string | null;
  maxBodySize: string | null;
  gzip: boolean | null;
  gzipTypes: string[] | null;
  gzipMinLength: number | null;
  gzipLevel: number | null;
  accessLog: boolean | null;
  defaultType: string;
  /** The Host a uwsgi_pass sends (HTTP_HOST): Debian's uwsgi_params sets it to $host. */
  uwsgiHost: string | null;
  limitReqStatus: number | null;
  limitConnStatus: number | null;
  /** Upstream timing, applied to the group the route proxies to. */
  timeouts: { connect?: string; read?: string; nextUpstream?: Directive; tries?: string; nextTimeout?: string };
  cache: { zone: string | null; valid: Directive[]; key: string | null; bypass: string[]; noCache: string[]; minUses: number | null; useStale: string[] | null; lock: boolean | null; lockTimeout: string | null };
  /** Directive texts whose replace-semantics lists this level set itself. */
  own: Set<string>;
}

function childScope(parent: Scope): Scope {
  return { ...parent, timeouts: { ...parent.timeouts }, cache: { ...parent.cache }, own: new Set() };
}

/**
 * An nginx time ("30s", "1h30m", "90": seconds) as a Portico duration, or null. Portico reads the
 * same syntax (core/units.ts) except nginx's "M", a month of 30 days, which Portico reads as
 * minutes: months are written as days.
 */
function duration(text: string): string | null {
  const portico = text.replace(/(\d+)M/g, (_, months: string) => `${Number(months) * 30}d`);
  return parseDuration(portico) === undefined ? null : /^\d+$/.test(portico) ? `${portico}s` : portico;
}

/** An nginx size ("10m", "512k", "1g", "100"): Portico reads the same syntax (binary units). */
function size(text: string): string | null {
  return /^\d+[kKmMgG]?$/.test(text) && parseSize(text) !== undefined ? text.toLowerCase() : null;
}

/**
 * The variables templates know (core/template.ts), named as nginx names them and meaning the
 * same; but `$route`, Portico's own (a route's id): in nginx it would be a variable the config set.
 */
const SAME_VARIABLES = new Set<string>(TEMPLATE_VARIABLES.filter((name) => name !== 'route'));

/** The variables of an nginx string that Portico does not know, or [] when all are known. */
function unknownVariables(text: string): string[] {
  const out: string[] = [];
  for (const match of text.matchAll(/\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))/g)) {
    const name = (match[1] ?? match[2] ?? '').toLowerCase();
    if (SAME_VARIABLES.has(name) || name.startsWith('http_') || name.startsWith('arg_')) continue;
    out.push(`$${name}`);
  }
  return out;
}

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

/** Directives with nothing to set in Portico, and why. */
const NOTHING_TO_SET: Record<string, string> = {
  sendfile: 'Portico sends files with its own file cache and streams; no switch',
  tcp_nopush: 'Portico writes each head and small body in one write; no switch',
  tcp_nodelay: 'Portico sets TCP_NODELAY on every connection',
  types_hash_max_size: 'a table size of nginx; Portico has no such table',
  types_hash_bucket_size: 'a table size of nginx; Portico has no such table',
  server_names_hash_bucket_size: 'a table size of nginx; Portico has no such table',
  server_names_hash_max_size: 'a table size of nginx; Portico has no such table',
  variables_hash_max_size: 'a table size of nginx; Portico has no such table',
  server_tokens: 'Portico\'s Server header has no version (set http.serverHeader to change it)',
  proxy_http_version: 'Portico speaks HTTP/1.1 with keep-alive to upstreams',
  proxy_buffering: 'Portico streams responses with backpressure; no buffer settings',
  proxy_buffers: 'Portico streams responses with backpressure; no buffer settings',
  proxy_buffer_size: 'Portico streams responses with backpressure; no buffer settings',
  proxy_busy_buffers_size: 'Portico streams responses with backpressure; no buffer settings',
  proxy_request_buffering: 'Portico streams request bodies with backpressure',
  uwsgi_buffering: 'Portico streams responses with backpressure; no buffer settings',
  uwsgi_buffers: 'Portico streams responses with backpressure; no buffer settings',
  uwsgi_buffer_size: 'Portico streams responses with backpressure; no buffer settings',
  client_body_buffer_size: 'Portico streams request bodies; no buffer setting',
  worker_connections: 'Portico has no per-worker connection table (http.maxConnections caps connections)',
  multi_accept: 'an accept strategy of nginx; Node accepts what is pending',
  use: 'Node uses epoll on Linux',
  worker_rlimit_nofile: 'set the file limit of the service (the systemd unit\'s LimitNOFILE)',
  gzip_vary: 'Portico always sends Vary: Accept-Encoding with compressed responses',
  gzip_http_version: 'Portico compresses HTTP/1.0 and 1.1 responses alike',
  gzip_buffers: 'Portico compresses as a stream; no buffer setting',
  gzip_disable: 'Portico compresses for every client that asks (no browser sniffing)',
  gzip_proxied: 'Portico compresses proxied responses as any other (a Via header does not change it)',
  ssl_protocols: 'Portico offers TLS 1.2 and 1.3 (Node\'s defaults)',
  ssl_ciphers: 'Portico uses Node\'s (OpenSSL\'s) default cipher list',
  ssl_prefer_server_ciphers: 'Portico uses Node\'s (OpenSSL\'s) default cipher order',
  ssl_session_cache: 'Portico keeps TLS sessions with tickets',
  ssl_session_timeout: 'Portico keeps TLS sessions with tickets',
  ssl_session_tickets: 'Portico keeps TLS sessions with tickets',
  ssl_dhparam: 'Portico uses ECDHE key exchange; no DH parameters',
  charset: 'Portico sends charset=utf-8 on text types itself',
  open_file_cache: 'Portico keeps small files in memory itself (static.hotFileMaxSize, hotCacheSize)',
  open_file_cache_valid: 'Portico keeps small files in memory itself (static.hotCacheValidity)',
  open_file_cache_min_uses: 'Portico keeps small files in memory itself',
  open_file_cache_errors: 'Portico keeps small files in memory itself',
  reset_timedout_connection: 'Portico resets connections it times out',
  keepalive_requests: 'see http.maxRequestsPerConnection (default 1000, nginx\'s too)',
};

export function translateNginx(directives: readonly Directive[], options: ImportOptions): ImportResult {
  const warnings: ImportFinding[] = [];
  const kept: ImportFinding[] = [];
  const warn = (d: Directive, reason: string) => warnings.push({ file: d.file, line: d.line, directive: show(d), reason });
  const keep = (d: Directive, reason: string) => kept.push({ file: d.file, line: d.line, directive: show(d), reason });
  const path = (text: string) => {
    const full = isAbsolute(text) ? text : join(options.prefix, text);
    const rel = relative(options.outputDir, full);
    return rel === '' ? '.' : rel.startsWith('..') && isAbsolute(text) ? text : rel.startsWith('.') ? rel : `./${rel}`;
  };

  const config: Json = {};
  const http: Json = {};
  const log: Json = {};
  const upstreams: Record<string, Json> = {};
  const upstreamProtocol = new Map<string, 'http' | 'uwsgi'>();
  const upstreamSource = new Map<string, Directive>();
  /** The timing a route set on each group (JSON), so a second route with other timing is reported. */
  const groupTiming = new Map<string, string>();
  const limits: { rateZones: Record<string, Json>; connZones: Record<string, Json> } = { rateZones: {}, connZones: {} };
  const cacheZones: Record<string, Json> = {};
  const logFormats = new Map<string, string>();
  const servers: Json[] = [];

  const root: Scope = {
    root: null,
    alias: null,
    aliasDirective: null,
    index: null,
    expires: null,
    addHeaders: [],
    proxySetHeaders: [],
    access: [],
    rateLimits: [],
    connLimits: [],
    proxyHideHeaders: [],
    basicAuth: null,
    authRealm: null,
    authFile: null,
    maxBodySize: null,
    gzip: null,
    gzipTypes: null,
    gzipMinLength: null,
    gzipLevel: null,
    accessLog: null,
    defaultType: 'text/plain',
    uwsgiHost: null,
    limitReqStatus: null,
    limitConnStatus: null,
    timeouts: {},
    cache: { zone: null, valid: [], key: null, bypass: [], noCache: [], minUses: null, useStale: null, lock: null, lockTimeout: null },
    own: new Set(),
  };

  /**
   * Directives that may appear at http, server and location level: they change `scope`. Returns
   * false when the directive is not one of them.
   */
  function applyCommon(d: Directive, scope: Scope, level: 'http' | 'server' | 'location'): boolean {
    const [a, b] = d.args;
    switch (d.name) {
      case 'root':
        scope.root = a ?? null;
        scope.alias = null;
        return true;
      case 'alias':
        if (level !== 'location') return false;
        scope.alias = a ?? null;
        scope.aliasDirective = d;
        return true;
      case 'index':
        scope.index = [...d.args];
        return true;
      case 'expires':
        scope.expires = d;
        return true;
      case 'add_header': {
        if (!scope.own.has('add_header')) scope.addHeaders = [];
        scope.own.add('add_header');
        const unknown = unknownVariables(b ?? '');
        if (unknown.length > 0) {
          warn(d, `variables Portico does not have: ${unknown.join(', ')}`);
          return true;
        }
        scope.addHeaders.push(d);
        return true;
      }
      case 'proxy_set_header':
        if (!scope.own.has('proxy_set_header')) scope.proxySetHeaders = [];
        scope.own.add('proxy_set_header');
        scope.proxySetHeaders.push(d);
        return true;
      case 'proxy_hide_header':
        if (!scope.own.has('proxy_hide_header')) scope.proxyHideHeaders = [];
        scope.own.add('proxy_hide_header');
        if (a) scope.proxyHideHeaders.push(a);
        return true;
      case 'allow':
      case 'deny': {
        if (!scope.own.has('access')) scope.access = [];
        scope.own.add('access');
        scope.access.push({ [d.name]: a });
        return true;
      }
      case 'auth_basic':
        scope.authRealm = a === 'off' ? null : (a ?? null);
        scope.basicAuth = a === 'off' ? false : null;
        return true;
      case 'auth_basic_user_file':
        scope.authFile = a ? path(a) : null;
        return true;
      case 'limit_req': {
        if (!scope.own.has('limit_req')) scope.rateLimits = [];
        scope.own.add('limit_req');
        const ref: Json = {};
        for (const arg of d.args) {
          if (arg.startsWith('zone=')) ref.zone = arg.slice(5);
          else if (arg.startsWith('burst=')) ref.burst = Number(arg.slice(6));
          else if (arg === 'nodelay') ref.nodelay = true;
          else if (arg.startsWith('delay=')) ref.delay = Number(arg.slice(6));
          else warn(d, `unknown parameter "${arg}"`);
        }
        scope.rateLimits.push(ref);
        return true;
      }
      case 'limit_req_status':
        scope.limitReqStatus = Number(a);
        return true;
      case 'limit_conn':
        if (!scope.own.has('limit_conn')) scope.connLimits = [];
        scope.own.add('limit_conn');
        scope.connLimits.push({ zone: a, max: Number(b) });
        return true;
      case 'limit_conn_status':
        scope.limitConnStatus = Number(a);
        return true;
      case 'client_max_body_size': {
        const value = size(a ?? '');
        if (value === null) warn(d, 'expected a size like "10m"');
        else scope.maxBodySize = value;
        return true;
      }
      case 'gzip':
        scope.gzip = a === 'on';
        return true;
      case 'gzip_types':
        scope.gzipTypes = [...d.args];
        return true;
      case 'gzip_min_length':
        scope.gzipMinLength = parseSize(a ?? '') ?? null;
        return true;
      case 'gzip_comp_level':
        scope.gzipLevel = Number(a);
        return true;
      case 'default_type':
        scope.defaultType = a ?? 'text/plain';
        return true;
      case 'access_log':
        if (a === 'off') scope.accessLog = false;
        else {
          scope.accessLog = true;
          accessLogTo(d);
        }
        return true;
      case 'proxy_connect_timeout':
      case 'uwsgi_connect_timeout':
        scope.timeouts.connect = duration(a ?? '') ?? undefined;
        return true;
      case 'proxy_read_timeout':
      case 'uwsgi_read_timeout':
        scope.timeouts.read = duration(a ?? '') ?? undefined;
        return true;
      case 'proxy_send_timeout':
      case 'uwsgi_send_timeout':
        keep(d, 'Portico sends request bodies with backpressure and bounds the whole attempt by the group\'s timeouts; no separate send timeout');
        return true;
      case 'proxy_next_upstream':
      case 'uwsgi_next_upstream':
        scope.timeouts.nextUpstream = d;
        return true;
      case 'proxy_next_upstream_tries':
      case 'uwsgi_next_upstream_tries':
        scope.timeouts.tries = a;
        return true;
      case 'proxy_next_upstream_timeout':
      case 'uwsgi_next_upstream_timeout':
        scope.timeouts.nextTimeout = duration(a ?? '') ?? undefined;
        return true;
      case 'proxy_cache':
        scope.cache.zone = a === 'off' ? null : (a ?? null);
        return true;
      case 'proxy_cache_valid':
        if (!scope.own.has('proxy_cache_valid')) scope.cache.valid = [];
        scope.own.add('proxy_cache_valid');
        scope.cache.valid.push(d);
        return true;
      case 'proxy_cache_key':
        scope.cache.key = a ?? null;
        return true;
      case 'proxy_cache_bypass':
        scope.cache.bypass = [...d.args];
        return true;
      case 'proxy_no_cache':
        scope.cache.noCache = [...d.args];
        return true;
      case 'proxy_cache_min_uses':
        scope.cache.minUses = Number(a);
        return true;
      case 'proxy_cache_use_stale':
        scope.cache.useStale = d.args.filter((arg) => arg !== 'off');
        return true;
      case 'proxy_cache_lock':
        scope.cache.lock = a === 'on';
        return true;
      case 'proxy_cache_lock_timeout':
        scope.cache.lockTimeout = duration(a ?? '');
        return true;
      case 'proxy_cache_methods':
        keep(d, 'Portico caches GET and HEAD (RFC 9111)');
        return true;
      case 'proxy_redirect':
        if (a === 'default' || a === 'off') keep(d, 'Portico passes Location as the upstream sent it, as "proxy_redirect off"; nginx\'s default rewrites only Locations naming the proxy_pass URL');
        else warn(d, 'Portico does not rewrite Location headers of upstream responses');
        return true;
      case 'error_page':
        warn(d, 'Portico has no custom error pages: its own error responses are short text');
        return true;
      case 'log_not_found':
        keep(d, 'Portico does not log missing files in the error log');
        return true;
      case 'error_log':
        errorLogTo(d);
        return true;
      case 'include': {
        const name = (a ?? '').split('/').at(-1) ?? '';
        if (name === 'mime.types') keep(d, 'Portico has its own table of media types by extension');
        else if (name === 'uwsgi_params') {
          keep(d, 'Portico sends the standard uwsgi variables (REQUEST_METHOD, PATH_INFO, QUERY_STRING, CONTENT_TYPE, HTTP_*…) itself');
          // Debian's copy ends with "uwsgi_param HTTP_HOST $host;" (the host without the port).
          if (/^\s*uwsgi_param\s+HTTP_HOST\s+\$host\s*;/m.test(stockFile(a ?? ''))) scope.uwsgiHost = '$host';
        }
        else if (name === 'proxy_params') {
          // Debian's proxy_params: Host $http_host, X-Real-IP, X-Forwarded-For, X-Forwarded-Proto.
          if (!scope.own.has('proxy_set_header')) scope.proxySetHeaders = [];
          scope.own.add('proxy_set_header');
          for (const [name, value] of [['Host', '$http_host'], ['X-Real-IP', '$remote_addr'], ['X-Forwarded-For', '$proxy_add_x_forwarded_for'], ['X-Forwarded-Proto', '$scheme']] as const) scope.proxySetHeaders.push({ ...d, name: 'proxy_set_header', args: [name, value] });
        } else if (STOCK_INCLUDES.has(name)) warn(d, 'Portico serves no FastCGI/SCGI applications and has no charset maps');
        else return false;
        return true;
      }
    }
    if (NOTHING_TO_SET[d.name] !== undefined) {
      keep(d, NOTHING_TO_SET[d.name] as string);
      return true;
    }
    return false;
  }

  /** A stock include's text: beside the config, else nginx's package copy, else "". */
  function stockFile(name: string): string {
    for (const path of [isAbsolute(name) ? name : join(options.prefix, name), join('/etc/nginx', name)]) {
      try {
        return readFileSync(path, 'utf8');
      } catch {
        /* the next place */
      }
    }
    return '';
  }

  let accessLogSet: Directive | null = null;
  function accessLogTo(d: Directive): void {
    const [file, format] = d.args;
    if (accessLogSet) {
      if (show(accessLogSet) !== show(d)) warn(d, `Portico writes one access log (the first one, ${accessLogSet.file}:${accessLogSet.line}, is used)`);
      return;
    }
    accessLogSet = d;
    const entry: Json = { path: file === '/dev/stdout' ? 'stdout' : file === '/dev/stderr' ? 'stderr' : path(file as string) };
    if (format && format !== 'combined') {
      const text = logFormats.get(format);
      if (text === undefined) warn(d, `no log_format "${format}" before it; the combined format is used`);
      else entry.format = text;
    }
    if (d.args.length > 2) warn(d, `parameters ${d.args.slice(2).join(' ')} are not translated (Portico writes each line as it goes)`);
    log.access = entry;
  }
  function errorLogTo(d: Directive): void {
    const [file, level] = d.args;
    if (file) log.error = file === '/dev/stderr' ? 'stderr' : file === '/dev/stdout' ? 'stdout' : path(file);
    const levels: Record<string, string> = { debug: 'debug', info: 'info', notice: 'info', warn: 'warn', error: 'error', crit: 'error', alert: 'fatal', emerg: 'fatal' };
    if (level) log.level = levels[level] ?? 'error';
  }

  function translateUpstream(d: Directive): void {
    const name = d.args[0] as string;
    const group: Json = { [SOURCE]: `upstream ${name} (${d.file}:${d.line})` };
    const servers: Json[] = [];
    const failSettings = new Set<string>();
    for (const item of d.block ?? []) {
      const [a] = item.args;
      switch (item.name) {
        case 'server': {
          const entry: Json = { url: a };
          let maxFails = '1';
          let failTimeout = '10s';
          for (const param of item.args.slice(1)) {
            const [key, value] = param.split('=') as [string, string | undefined];
            if (key === 'weight') entry.weight = Number(value);
            else if (key === 'backup') entry.backup = true;
            else if (key === 'max_conns') entry.maxConns = Number(value);
            else if (key === 'max_fails') maxFails = value ?? '1';
            else if (key === 'fail_timeout') failTimeout = duration(value ?? '') ?? '10s';
            else if (key === 'down') warn(item, 'a server marked "down" is left out of the group');
            else warn(item, `parameter "${param}" is not translated`);
          }
          failSettings.add(`${maxFails} ${failTimeout}`);
          if (!item.args.includes('down')) servers.push(entry);
          break;
        }
        case 'least_conn':
          group.balance = 'least-conn';
          break;
        case 'ip_hash':
          group.balance = 'ip-hash';
          break;
        case 'random':
          group.balance = 'random-two';
          if (item.args.length > 0 && item.args.join(' ') !== 'two' && item.args.join(' ') !== 'two least_conn') warn(item, 'Portico\'s random picks the less loaded of two random servers');
          break;
        case 'hash':
          group.balance = 'hash';
          group.hashKey = a;
          if (!item.args.includes('consistent')) keep(item, 'Portico\'s hash is always consistent (ketama, as "hash … consistent"): keys map to servers differently than nginx\'s plain hash');
          if (unknownVariables(a ?? '').length > 0) warn(item, `variables Portico does not have: ${unknownVariables(a ?? '').join(', ')}`);
          break;
        case 'keepalive':
          keep(item, 'Portico keeps idle upstream connections by default; keepAlive.connections would cap connections, which nginx\'s keepalive does not');
          break;
        case 'keepalive_timeout':
          group.keepAlive = { idleTimeout: duration(a ?? '') };
          break;
        case 'keepalive_requests':
          keep(item, 'Portico reuses an upstream connection for any number of requests');
          break;
        case 'zone':
          keep(item, 'Portico shares group state between its processes itself');
          break;
        default:
          warn(item, 'not translated inside "upstream"');
      }
    }
    const [fails] = [...failSettings];
    if (fails) {
      const [maxFails, failTimeout] = fails.split(' ') as [string, string];
      if (maxFails !== '1') group.maxFails = Number(maxFails);
      if (failTimeout !== '10s') group.failTimeout = failTimeout;
    }
    if (failSettings.size > 1) warn(d, `its servers have different max_fails/fail_timeout; Portico has one setting per group (the first server's, ${fails}, is used)`);
    group.servers = servers.map((server) => (Object.keys(server).length === 1 ? server.url : server));
    upstreams[name] = group;
    upstreamSource.set(name, d);
  }

  /** An upstream server address of nginx ("127.0.0.1:8000", "unix:/x.sock", "localhost") as a Portico URL. */
  function serverUrl(address: string, protocol: 'http' | 'uwsgi'): string {
    if (address.startsWith('unix:')) return protocol === 'uwsgi' ? `uwsgi+${address}` : address;
    const withPort = /:\d+$/.test(address) ? address : `${address}:${protocol === 'uwsgi' ? '' : '80'}`;
    return `${protocol}://${withPort}`;
  }

  function translateHttp(block: readonly Directive[]): void {
    const scope = childScope(root);
    // Zones, formats and upstreams first: servers refer to them wherever they are written.
    for (const d of block) {
      if (d.name === 'upstream' && d.block) translateUpstream(d);
      else if (d.name === 'log_format') logFormats.set(d.args[0] as string, translateLogFormat(d));
    }
    // nginx merges a block's settings into its servers after reading all of it: a directive
    // written after a server block applies to it too.
    for (const d of block) {
      const [a] = d.args;
      switch (d.name) {
        case 'upstream':
        case 'log_format':
        case 'server':
          continue;
        case 'keepalive_timeout':
          http.keepAliveTimeout = duration(a ?? '') ?? undefined;
          if (d.args.length > 1) warn(d, 'the second value (a Keep-Alive header) is not sent');
          continue;
        case 'client_header_timeout':
          http.headersTimeout = duration(a ?? '') ?? undefined;
          continue;
        case 'client_body_timeout':
          http.bodyTimeout = duration(a ?? '') ?? undefined;
          continue;
        case 'send_timeout':
          http.sendTimeout = duration(a ?? '') ?? undefined;
          continue;
        case 'underscores_in_headers':
          http.underscoresInHeaders = a === 'on';
          continue;
        case 'ignore_invalid_headers':
          http.ignoreInvalidHeaders = a !== 'off';
          continue;
        case 'large_client_header_buffers': {
          const value = size(d.args[1] ?? '');
          if (value) {
            http.maxUriLength = value;
            http.maxHeaderSize = value;
          }
          continue;
        }
        case 'set_real_ip_from':
          http.trustedProxies = [...((http.trustedProxies as string[] | undefined) ?? []), a];
          continue;
        case 'real_ip_header':
          if (a !== 'X-Forwarded-For') warn(d, 'Portico reads the client address from X-Forwarded-For only');
          else keep(d, 'Portico reads X-Forwarded-For from http.trustedProxies');
          continue;
        case 'real_ip_recursive':
          keep(d, 'Portico walks X-Forwarded-For back past trusted proxies (as "on")');
          continue;
        case 'limit_req_zone':
        case 'limit_conn_zone': {
          const zoneArg = d.args.find((arg) => arg.startsWith('zone='));
          const zone = zoneArg?.slice(5).split(':')[0];
          const key = d.args[0] as string;
          if (!zone) {
            warn(d, 'no zone=NAME:SIZE');
            continue;
          }
          if (unknownVariables(key).length > 0) warn(d, `variables Portico does not have: ${unknownVariables(key).join(', ')}`);
          if (d.name === 'limit_conn_zone') limits.connZones[zone] = { key };
          else {
            const rate = d.args.find((arg) => arg.startsWith('rate='))?.slice(5);
            limits.rateZones[zone] = { key, rate };
          }
          continue;
        }
        case 'proxy_cache_path': {
          const zoneArg = d.args.find((arg) => arg.startsWith('keys_zone='));
          const [zone, memory] = (zoneArg?.slice(10) ?? '').split(':');
          if (!zone) {
            warn(d, 'no keys_zone=NAME:SIZE');
            continue;
          }
          const entry: Json = { dir: path(a as string) };
          const max = d.args.find((arg) => arg.startsWith('max_size='));
          if (max) entry.diskSize = size(max.slice(9)) ?? undefined;
          cacheZones[zone] = entry;
          const other = d.args.slice(1).filter((arg) => !arg.startsWith('keys_zone=') && !arg.startsWith('max_size='));
          if (other.length > 0) keep(d, `${other.join(' ')}: Portico lays out its cache folder itself and evicts the least recently used entries past diskSize`);
          if (memory) keep(d, `keys_zone size ${memory}: Portico's memory tier is cache.zones.${zone}.memorySize (default 64mb)`);
          continue;
        }
      }
      if (applyCommon(d, scope, 'http')) continue;
      warn(d, 'not translated in "http"');
    }
    if (scope.maxBodySize !== null) http.maxBodySize = scope.maxBodySize;
    for (const d of block) if (d.name === 'server' && d.block) translateServer(d, scope);
  }

  function translateLogFormat(d: Directive): string {
    const text = d.args.slice(1).filter((arg) => !arg.startsWith('escape=')).join('');
    return text;
  }

  let serverCount = 0;
  function translateServer(d: Directive, parent: Scope): void {
    const scope = childScope(parent);
    const server: Json = { [SOURCE]: `server (${d.file}:${d.line})` };
    const listen: string[] = [];
    const names: string[] = [];
    let tls: Json | null = null;
    /** A server-level try_files: nginx runs it for requests no location takes. */
    let serverTryFiles: Directive | null = null;
    const serverRewrites: Json[] = [];
    const locations: Directive[] = [];
    let serverReturn: Directive | null = null;
    serverCount++;
    for (const item of d.block ?? []) {
      const [a] = item.args;
      switch (item.name) {
        case 'listen': {
          let address = a as string;
          if (/^\d+$/.test(address)) address = `:${address}`;
          else if (/^\*:\d+$/.test(address)) address = address.slice(1);
          else if (!/:\d+$/.test(address) && !address.startsWith('unix:')) address = `${address}:80`;
          listen.push(address);
          for (const option of item.args.slice(1)) {
            if (option === 'default_server' || option === 'default') server.default = true;
            else if (option === 'ssl') tls ??= {};
            else if (option === 'http2') keep(item, 'HTTP/2 is negotiated by ALPN on every TLS listener');
            else if (option === 'reuseport' || option.startsWith('backlog=') || option.startsWith('ipv6only=') || option === 'deferred' || option.startsWith('so_keepalive=')) keep(item, `${option}: a socket option Portico leaves to the system`);
            else warn(item, `option "${option}" is not translated`);
          }
          continue;
        }
        case 'server_name':
          for (const name of item.args) {
            if (name === '_' || name === '' || name === 'localhost.localdomain') continue;
            if (name.startsWith('~')) warn(item, `"${name}": Portico matches names exactly or by a leading "*." wildcard, not by regular expression`);
            else if (name.startsWith('.')) names.push(name.slice(1), `*${name}`);
            else if (name.endsWith('.*') || name.slice(1).includes('*')) warn(item, `"${name}": Portico's wildcards are a leading "*." only`);
            else names.push(name.toLowerCase());
          }
          continue;
        case 'ssl_certificate':
          tls ??= {};
          tls.cert = path(a as string);
          continue;
        case 'ssl_certificate_key':
          tls ??= {};
          tls.key = path(a as string);
          continue;
        case 'ssl':
          if (a === 'on') tls ??= {};
          continue;
        case 'http2':
          keep(item, 'HTTP/2 is negotiated by ALPN on every TLS listener');
          continue;
        case 'location':
          locations.push(item);
          continue;
        case 'rewrite': {
          const rule = rewriteRule(item);
          if (rule) serverRewrites.push(rule);
          continue;
        }
        case 'return':
          serverReturn ??= item;
          continue;
        case 'if': {
          const canonical = canonicalIf(item);
          if (canonical) server.canonical = canonical;
          else warn(item, 'only "if ($scheme = http) { return 301 https://$host$request_uri; }" is translated (canonical.https); other conditions have no Portico equivalent');
          continue;
        }
        case 'try_files':
          // nginx runs a server-level try_files for requests no location takes.
          serverTryFiles = item;
          continue;
        case 'keepalive_timeout':
          if (http.keepAliveTimeout === undefined) http.keepAliveTimeout = duration(a ?? '') ?? undefined;
          else if (http.keepAliveTimeout !== duration(a ?? '')) warn(item, 'Portico has one keep-alive timeout for all servers (http.keepAliveTimeout)');
          continue;
      }
      if (applyCommon(item, scope, 'server')) continue;
      warn(item, 'not translated in "server"');
    }
    server.listen = listen.length === 0 ? ':80' : listen.length === 1 ? listen[0] : listen;
    if (names.length > 0) server.names = [...new Set(names)];
    if (tls) {
      if (!tls.cert || !tls.key) warn(d, '"listen … ssl" without ssl_certificate and ssl_certificate_key; Portico needs both (or tls: "auto")');
      else server.tls = tls;
    }
    if (serverRewrites.length > 0) server.rewrite = serverRewrites;
    // Settings Portico inherits from server to route field by field, as nginx does.
    if (scope.root) server.static = { root: path(scope.root), ...(scope.index ? { index: scope.index } : {}) };
    if (scope.maxBodySize !== null && scope.maxBodySize !== parent.maxBodySize) server.maxBodySize = scope.maxBodySize;
    const encode = encodeOf(scope);
    if (encode) server.encode = encode;
    if (scope.accessLog === false) server.accessLog = false;
    Object.assign(server, accessOf(scope, null));

    const routes: Json[] = [];
    if (serverReturn) {
      // A server-level return runs in nginx's rewrite phase, before any location is chosen.
      routes.push(returnRoute(serverReturn, scope, { [SOURCE]: from(serverReturn) }));
      for (const location of locations) warn(location, `never reached: the server's "${show(serverReturn)}" (${serverReturn.file}:${serverReturn.line}) answers every request first`);
    } else {
      for (const location of locations) translateLocation(location, scope, routes, null);
      const hasRoot = routes.some((route) => route.prefix === '/' && route.skipRegex === undefined);
      // A request no location takes is served with the server's own settings (its root and
      // try_files). The regex locations still come first: the prefix "/" is the longest prefix
      // only when no other is.
      if (!hasRoot && (scope.root || serverTryFiles)) {
        const route: Json = { [SOURCE]: 'requests no location takes: the server\'s root and try_files', prefix: '/' };
        fillContent(route, scope, serverTryFiles, { server: true });
        routes.push(route);
      }
    }
    if (routes.length > 0) server.routes = routes;
    servers.push(server);
  }

  /** `if ($scheme = http) { return 301 https://$host$request_uri; }` (the usual HTTPS redirect). */
  function canonicalIf(d: Directive): Json | null {
    const condition = d.args.join(' ').replace(/^\(\s*|\s*\)$/g, '');
    const inner = d.block ?? [];
    const only = inner.length === 1 ? inner[0] : undefined;
    if (!only || only.name !== 'return') return null;
    const [status, target] = only.args;
    if (!/^\$scheme\s*(=\s*"?http"?|!=\s*"?https"?)$/.test(condition)) return null;
    if (target !== 'https://$host$request_uri' && target !== 'https://$server_name$request_uri') return null;
    if (!REDIRECT_STATUSES.has(Number(status))) return null;
    return { https: true, status: Number(status) };
  }

  function rewriteRule(d: Directive): Json | null {
    const [from, to, flag] = d.args;
    if (!from || to === undefined) {
      warn(d, 'expected "rewrite REGEX REPLACEMENT [flag]"');
      return null;
    }
    const unknown = unknownVariables(to);
    if (unknown.length > 0) {
      warn(d, `variables Portico does not have: ${unknown.join(', ')}`);
      return null;
    }
    const rule: Json = { from, to };
    if (flag) {
      if (!['last', 'break', 'redirect', 'permanent'].includes(flag)) {
        warn(d, `unknown flag "${flag}"`);
        return null;
      }
      rule.flag = flag;
    }
    return rule;
  }

  function encodeOf(scope: Scope): Json | null {
    if (!scope.gzip) return null;
    // nginx compresses text/html always, and the gzip_types besides; gzip_min_length is 20 by default.
    // Portico labels .js text/javascript (RFC 9239) and .xml application/xml (RFC 7303), where
    // nginx's mime.types says application/javascript and text/xml: both names are listed.
    const synonyms: Record<string, string> = { 'application/javascript': 'text/javascript', 'application/x-javascript': 'text/javascript', 'text/xml': 'application/xml' };
    const given = scope.gzipTypes ?? [];
    const types = given.includes('*') ? ['*/*'] : [...new Set(['text/html', ...given, ...given.flatMap((type) => synonyms[type] ?? [])])];
    return {
      encodings: ['gzip'],
      types,
      minLength: scope.gzipMinLength ?? 20,
      level: { gzip: scope.gzipLevel ?? 1 },
    };
  }

  /** Access settings of a route (or, with `parent` null, of a server): only those it sets itself. */
  function accessOf(scope: Scope, parent: Scope | null): Json {
    const out: Json = {};
    const own = (key: string) => parent === null || scope.own.has(key);
    if (own('access') && scope.access.length > 0) out.access = scope.access;
    if (scope.authRealm && scope.authFile && (parent === null || scope.authRealm !== parent.authRealm || scope.authFile !== parent.authFile)) out.basicAuth = { realm: scope.authRealm, htpasswd: scope.authFile };
    else if (scope.basicAuth === false && parent?.authRealm) out.basicAuth = false;
    const reqStatus = scope.limitReqStatus ?? 503;
    if ((own('limit_req') || scope.limitReqStatus !== parent?.limitReqStatus) && scope.rateLimits.length > 0) {
      const refs = scope.rateLimits.map((ref) => ({ ...ref, status: reqStatus }));
      out.rateLimit = refs.length === 1 ? refs[0] : refs;
    }
    const connStatus = scope.limitConnStatus ?? 503;
    if ((own('limit_conn') || scope.limitConnStatus !== parent?.limitConnStatus) && scope.connLimits.length > 0) {
      const refs = scope.connLimits.map((ref) => (connStatus === 503 ? ref : { ...ref, status: connStatus }));
      out.connLimit = refs.length === 1 ? refs[0] : refs;
    }
    return out;
  }

  function returnRoute(d: Directive, scope: Scope, route: Json): Json {
    const [first, second] = d.args;
    const status = /^\d{3}$/.test(first ?? '') ? Number(first) : null;
    const unknown = unknownVariables(d.args.join(' '));
    if (unknown.length > 0) warn(d, `variables Portico does not have: ${unknown.join(', ')}`);
    if (status === null) return { ...route, redirect: { to: first, status: 302 } };
    if (REDIRECT_STATUSES.has(status)) {
      if (second === undefined) return { ...route, respond: { status } };
      return { ...route, redirect: { to: second, status } };
    }
    if (status === 444) warn(d, 'Portico has no "close without answering"; it answers 444 with no body');
    const respond: Json = { status };
    if (second !== undefined) {
      respond.body = second;
      // nginx types the answer by the URI's extension (mime.types), else default_type: known
      // here for an exact location.
      const exact = typeof route.exact === 'string' ? extname(route.exact) : '';
      respond.contentType = (exact && mime.lookup(exact)) || scope.defaultType;
    }
    return { ...route, respond };
  }

  function translateLocation(d: Directive, parent: Scope, routes: Json[], enclosing: Json | null): void {
    const args = [...d.args];
    const route: Json = { [SOURCE]: from(d).replace(/^location /, 'location ').replace(/ \(/, ' { … } (') };
    let modifier = args.length === 2 ? (args[0] as string) : '';
    let target = (args.length === 2 ? args[1] : args[0]) ?? '';
    // "location =/path" and "location ~^/re": the modifier written against the path.
    if (args.length === 1) {
      const glued = /^(=|\^~|~\*|~)(.+)$/.exec(target);
      if (glued) [modifier, target] = [glued[1] as string, glued[2] as string];
    }
    if (target.startsWith('@')) {
      warn(d, 'named locations have no Portico equivalent (a try_files fallback or error_page that names one is reported where it is)');
      return;
    }
    if (modifier === '=') route.exact = target;
    else if (modifier === '^~') Object.assign(route, { prefix: target, skipRegex: true });
    else if (modifier === '~' || modifier === '~*') {
      route.regex = target;
      if (modifier === '~*') route.caseInsensitive = true;
      if (enclosing) {
        warn(d, 'a regex location inside another location: nginx tries it only when the outer one matched; Portico\'s routes are one list');
        return;
      }
    } else if (modifier === '') {
      if (!target.startsWith('/')) {
        warn(d, 'a prefix that does not start with "/"');
        return;
      }
      route.prefix = target;
    } else {
      warn(d, `unknown modifier "${modifier}"`);
      return;
    }
    const scope = childScope(parent);
    const rewrites: Json[] = [];
    let returned: Directive | null = null;
    let proxy: Directive | null = null;
    let tryFiles: Directive | null = null;
    const nested: Directive[] = [];
    const methodIfs: Directive[] = [];
    for (const item of d.block ?? []) {
      switch (item.name) {
        case 'location':
          nested.push(item);
          continue;
        case 'rewrite': {
          const rule = rewriteRule(item);
          if (rule) rewrites.push(rule);
          continue;
        }
        case 'return':
          returned ??= item;
          continue;
        case 'proxy_pass':
        case 'uwsgi_pass':
          proxy = item;
          continue;
        case 'try_files':
          tryFiles = item;
          continue;
        case 'if':
          methodIfs.push(item);
          continue;
        case 'internal':
          warn(item, 'Portico has no internal-only routes: this route answers clients too');
          continue;
        case 'limit_except':
          warn(item, 'Portico has no per-method access rules');
          continue;
      }
      if (applyCommon(item, scope, 'location')) continue;
      warn(item, 'not translated in "location"');
    }
    if (rewrites.length > 0) route.rewrite = rewrites;
    if (returned) Object.assign(route, returnRoute(returned, scope, route));
    else if (proxy) proxyRoute(route, proxy, scope);
    else fillContent(route, scope, tryFiles, { server: false, parent });
    if (tryFiles && (returned || proxy)) keep(tryFiles, `not used: the location's ${returned ? 'return' : proxy?.name} answers first`);
    // Header and access settings as nginx resolves them for this location.
    const headers = addHeadersOf(scope);
    if (headers) route.headers = { ...(route.headers as Json | undefined), ...headers };
    if (scope.maxBodySize !== parent.maxBodySize && scope.maxBodySize !== null) route.maxBodySize = scope.maxBodySize;
    if (scope.accessLog === false && parent.accessLog !== false) route.accessLog = false;
    const encode = encodeOf(scope);
    const parentEncode = encodeOf(parent);
    if (JSON.stringify(encode) !== JSON.stringify(parentEncode)) route.encode = encode ?? false;
    Object.assign(route, accessOf(scope, parent));
    if (enclosing && typeof route.prefix === 'string' && typeof enclosing.prefix === 'string' && !route.prefix.startsWith(enclosing.prefix)) warn(d, `nested "${target}" is not inside "${String(enclosing.prefix)}"`);
    // `if ($request_method …) { return …; }`: a route of its own for those methods, beside this one.
    for (const item of methodIfs) {
      const variant = methodRoute(item, route, scope);
      if (variant) routes.push(variant);
    }
    // A nested location inherits this one's settings; as routes they sit side by side.
    routes.push(route);
    for (const inner of nested) translateLocation(inner, scope, routes, route);
  }

  /**
   * A location's `if ($request_method = X) { [add_header …;] return …; }` (also `!=`, `~`, `~*`,
   * `!~`, `!~*`) as a route with `methods` and the location's matcher; null (reported) for any
   * other `if`. The methods of a negated or regex condition are found among the nine of RFC 9110
   * and RFC 5789; a request with another method gets the location's own handling.
   */
  function methodRoute(d: Directive, location: Json, scope: Scope): Json | null {
    const condition = d.args.join(' ').replace(/^\(\s*/, '').replace(/\s*\)$/, '');
    const match = /^\$request_method\s*(=|!=|~\*?|!~\*?)\s*"?([^"]+?)"?$/.exec(condition);
    const inner = d.block ?? [];
    const returned = inner.filter((item) => item.name === 'return');
    const other = inner.filter((item) => item.name !== 'return' && item.name !== 'add_header');
    if (!match || returned.length !== 1 || other.length > 0) {
      warn(d, 'only "if ($request_method …) { [add_header …;] return …; }" in a location is translated (a route with "methods"); other conditions have no Portico equivalent');
      return null;
    }
    const [, operator, value] = match as unknown as [string, string, string];
    const STANDARD = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'];
    let test: (method: string) => boolean;
    try {
      const regex = operator.includes('~') ? new RegExp(value, operator.endsWith('*') ? 'i' : '') : null;
      test = regex ? (method) => regex.test(method) : (method) => method === value;
    } catch {
      warn(d, `"${value}" is not a regular expression JavaScript reads`);
      return null;
    }
    const negated = operator.startsWith('!');
    const methods = STANDARD.filter((method) => test(method) !== negated);
    if (!negated && operator === '=' && !STANDARD.includes(value)) methods.push(value);
    if (methods.length === 0) {
      warn(d, 'no request method meets this condition');
      return null;
    }
    if (negated || operator.includes('~')) keep(d, `the condition is met by ${methods.join(', ')} (of the methods of RFC 9110 and PATCH); other methods get the location's own handling`);
    const matcher: Json = {};
    for (const key of ['exact', 'prefix', 'skipRegex', 'regex', 'caseInsensitive']) if (location[key] !== undefined) matcher[key] = location[key];
    const variant = returnRoute(returned[0] as Directive, scope, { [SOURCE]: from(d), ...matcher, methods });
    // An if block is a configuration level of its own: its add_header lines replace the location's.
    const own = inner.filter((item) => item.name === 'add_header');
    const headers = addHeadersOf(own.length > 0 ? { ...scope, addHeaders: own } : scope);
    if (headers) variant.headers = headers;
    return variant;
  }

  function addHeadersOf(scope: Scope): Json | null {
    if (scope.addHeaders.length === 0) return null;
    const add: Record<string, string> = {};
    for (const d of scope.addHeaders) {
      const [name, value] = d.args;
      if (!name || value === undefined) continue;
      add[name] = value;
    }
    return { add };
  }

  /** Static content of a route: root/alias, index, try_files, expires, as they apply here. */
  function fillContent(route: Json, scope: Scope, tryFiles: Directive | null, where: { server: boolean; parent?: Scope }): void {
    const fields: Json = {};
    const parent = where.parent;
    if (scope.alias) {
      fields.root = path(scope.alias);
      fields.alias = true;
      if (route.regex !== undefined && scope.aliasDirective) warn(scope.aliasDirective, 'alias in a regex location: Portico\'s alias removes a matched prefix only');
    } else if (scope.root && (where.server || scope.root !== parent?.root || parent?.alias)) fields.root = path(scope.root);
    else if (!scope.root) {
      // nginx's default root is "html" under its install prefix, no files of this config: the
      // route gets no handler (Portico answers 404).
      if (tryFiles) warn(tryFiles, 'no root or alias applies here');
      return;
    }
    if (scope.index && (where.server || scope.index.join() !== parent?.index?.join())) fields.index = scope.index;
    if (tryFiles) {
      const items = [...tryFiles.args];
      const last = items.at(-1) ?? '';
      if (last.startsWith('@')) warn(tryFiles, `the fallback "${last}" is a named location, which Portico does not have; "=404" is used`);
      const candidates = items.slice(0, -1).concat(last.startsWith('@') ? ['=404'] : [last]);
      const unknown = unknownVariables(candidates.join(' '));
      if (unknown.length > 0) warn(tryFiles, `variables Portico does not have: ${unknown.join(', ')}`);
      else fields.tryFiles = candidates;
    }
    if (scope.expires) {
      const value = scope.expires.args.join(' ');
      if (value === 'off') {
        /* no header */
      } else if (value === 'max') fields.maxAge = '3650d';
      else if (value === 'epoch' || value.startsWith('-')) route.headers = { set: { 'Cache-Control': 'no-cache' } };
      else if (duration(value)) fields.maxAge = duration(value);
      else warn(scope.expires, 'only a lifetime ("30d"), "max", "epoch", "off" or a negative one is translated');
    }
    route.static = fields;
  }

  function proxyRoute(route: Json, d: Directive, scope: Scope): void {
    const target = d.args[0] ?? '';
    const protocol = d.name === 'uwsgi_pass' ? 'uwsgi' : 'http';
    const unknown = unknownVariables(target);
    if (unknown.length > 0 || target.includes('$')) {
      warn(d, 'an address made of variables is not translated (Portico\'s proxy target is fixed)');
      route.respond = { status: 502 };
      return;
    }
    let to: string;
    let groupName: string | null = null;
    if (protocol === 'uwsgi') {
      const address = target.replace(/^uwsgi:\/\//, '');
      if (upstreams[address]) {
        groupName = address;
        to = address;
      } else to = serverUrl(address, 'uwsgi');
    } else {
      const match = /^(https?):\/\/([^/]+)(\/.*)?$/.exec(target);
      if (!match) {
        warn(d, 'expected http://address[/path] or https://…');
        route.respond = { status: 502 };
        return;
      }
      const [, scheme, host, uriPath] = match as unknown as [string, string, string, string | undefined];
      if (upstreams[host]) {
        groupName = host;
        to = uriPath ? `${scheme}://${host}${uriPath}` : host;
      } else if (host.startsWith('unix:')) {
        to = host;
        if (uriPath) warn(d, 'a path after a unix socket address is not translated');
      } else to = `${scheme}://${/:\d+$/.test(host) ? host : `${host}:${scheme === 'https' ? 443 : 80}`}${uriPath ?? ''}`;
      if (uriPath && route.regex !== undefined) warn(d, 'a URI in proxy_pass inside a regex location is refused by nginx itself');
    }
    if (groupName) {
      const previous = upstreamProtocol.get(groupName);
      if (previous && previous !== protocol) warn(d, `the upstream "${groupName}" is used by both proxy_pass and uwsgi_pass; Portico's groups speak one protocol`);
      upstreamProtocol.set(groupName, protocol);
    }
    const proxy: Json = { to };
    if (protocol === 'http') {
      // nginx sends Host: $proxy_host (the upstream's address) and no X-Forwarded-* unless told.
      proxy.xForwarded = false;
      const set: Record<string, string> = {};
      // $proxy_host: the address of proxy_pass, which for an upstream block is its name.
      let host = groupName ? groupName : 'upstream';
      for (const header of scope.proxySetHeaders) {
        const [name, value] = header.args as [string, string];
        const lower = name.toLowerCase();
        if (lower === 'host') {
          host = value === '$http_host' ? 'client' : value === '$proxy_host' ? 'upstream' : value;
          continue;
        }
        if (lower === 'connection' || lower === 'upgrade') {
          keep(header, 'Portico passes WebSocket upgrades and keeps upstream connections alive itself');
          continue;
        }
        const unknownHere = unknownVariables(value);
        if (unknownHere.length > 0) {
          warn(header, `variables Portico does not have: ${unknownHere.join(', ')}`);
          continue;
        }
        set[name] = value;
      }
      if (host !== 'client') proxy.host = host;
      if (Object.keys(set).length > 0) proxy.requestHeaders = { set };
      // nginx hides Server (it sends its own), Date, X-Pad and X-Accel-*; Portico's default hides X-Powered-By too.
      proxy.hideHeaders = ['server', ...scope.proxyHideHeaders.map((name) => name.toLowerCase())];
    } else {
      proxy.xForwarded = false;
      if (scope.uwsgiHost) proxy.host = scope.uwsgiHost;
    }
    route.proxy = proxy;
    applyUpstreamTiming(d, groupName, to, scope, route);
    applyCache(d, scope, route);
  }

  /** Timeouts and retries (location-level in nginx) on the group the route proxies to. */
  function applyUpstreamTiming(d: Directive, groupName: string | null, to: string, scope: Scope, route: Json): void {
    const timing: Json = {};
    if (scope.timeouts.connect) timing.connectTimeout = scope.timeouts.connect;
    if (scope.timeouts.read) {
      timing.headerTimeout = scope.timeouts.read;
      timing.idleTimeout = scope.timeouts.read;
    }
    const retry: Json = {};
    const next = scope.timeouts.nextUpstream;
    if (next) {
      if (next.args.includes('off')) retry.tries = 1;
      else {
        const on: (string | number)[] = [];
        for (const arg of next.args) {
          if (arg === 'error' || arg === 'timeout') on.push(arg);
          else if (/^http_\d{3}$/.test(arg)) on.push(Number(arg.slice(5)));
          else if (arg === 'non_idempotent') warn(next, 'Portico never retries a request that is not idempotent once it was sent');
          else if (arg === 'invalid_header') keep(next, 'an invalid upstream header counts as "error" in Portico');
          else warn(next, `"${arg}" is not translated`);
        }
        retry.on = on;
      }
    }
    if (scope.timeouts.tries && scope.timeouts.tries !== '0') retry.tries = Number(scope.timeouts.tries);
    if (scope.timeouts.nextTimeout && scope.timeouts.nextTimeout !== '0s') retry.timeout = scope.timeouts.nextTimeout;
    if (Object.keys(retry).length > 0) timing.retry = retry;
    if (Object.keys(timing).length === 0) return;
    let name = groupName;
    if (!name) {
      // A proxy to one address: a group of its own carries the timing.
      const url = to.replace(/^(https?:\/\/[^/]+)\/.*$/, '$1');
      const path = to.slice(url.length);
      name = `route${serverCount}_${Object.keys(upstreams).length + 1}`;
      upstreams[name] = { [SOURCE]: `${from(d)}: a group of its own, for its timeouts and retries`, servers: [url] };
      upstreamSource.set(name, d);
      if (url.startsWith('uwsgi')) upstreamProtocol.set(name, 'uwsgi');
      (route.proxy as Json).to = path ? `http://${name}${path}` : name;
    }
    const previous = groupTiming.get(name);
    const text = JSON.stringify(timing);
    if (previous !== undefined && previous !== text) warn(d, `the upstream "${name}" is used with other timeouts or retries elsewhere; Portico keeps one setting per group (the first one)`);
    else {
      groupTiming.set(name, text);
      Object.assign(upstreams[name] as Json, timing);
    }
  }

  function applyCache(d: Directive, scope: Scope, route: Json): void {
    const cache = scope.cache;
    if (!cache.zone) return;
    if (!cacheZones[cache.zone]) {
      warn(d, `proxy_cache "${cache.zone}" has no proxy_cache_path keys_zone`);
      return;
    }
    const out: Json = { zone: cache.zone };
    if (cache.key) {
      const unknown = unknownVariables(cache.key);
      if (unknown.length > 0) keep(d, `proxy_cache_key ${cache.key}: ${unknown.join(', ')} unknown to Portico; its default key ($scheme://$host$request_uri) is used`);
      else out.key = cache.key;
    }
    if (cache.bypass.length > 0) out.bypass = cache.bypass;
    if (cache.noCache.length > 0) out.noStore = cache.noCache;
    if (cache.minUses !== null) out.minUses = cache.minUses;
    if (cache.useStale) out.useStale = cache.useStale.filter((item) => ['error', 'timeout', 'http_500', 'http_502', 'http_503', 'http_504', 'updating'].includes(item));
    // nginx's proxy_cache_lock is off unless set; Portico's is on. nginx has no heuristic freshness.
    out.lock = cache.lock ?? false;
    out.heuristicPercent = 0;
    if (cache.lockTimeout) out.lockTimeout = cache.lockTimeout;
    if (cache.valid.length > 0) {
      const valid: Record<string, string> = {};
      for (const v of cache.valid) {
        const time = duration(v.args.at(-1) ?? '');
        const codes = v.args.length === 1 ? ['200', '301', '302'] : v.args.slice(0, -1);
        if (!time) {
          warn(v, 'expected a lifetime');
          continue;
        }
        for (const code of codes) valid[code === 'any' ? 'any' : code] = time;
      }
      out.valid = valid;
    }
    route.cache = out;
  }

  for (const d of directives) {
    const [a] = d.args;
    switch (d.name) {
      case 'http':
        if (d.block) translateHttp(d.block);
        continue;
      case 'events':
        for (const item of d.block ?? []) {
          if (NOTHING_TO_SET[item.name] !== undefined) keep(item, NOTHING_TO_SET[item.name] as string);
          else warn(item, 'not translated in "events"');
        }
        continue;
      case 'worker_processes':
        config.workers = a === 'auto' ? 'auto' : Number(a);
        continue;
      case 'pid':
        config.pidFile = path(a ?? '');
        continue;
      case 'user':
        keep(d, 'Portico runs as the user that starts it (the systemd unit\'s User=, the image\'s USER)');
        continue;
      case 'error_log':
        errorLogTo(d);
        continue;
      case 'worker_rlimit_nofile':
      case 'worker_cpu_affinity':
      case 'pcre_jit':
        keep(d, NOTHING_TO_SET[d.name] ?? 'a tuning of nginx\'s processes with no Portico setting');
        continue;
      case 'include':
        keep(d, 'a stock file of nginx\'s package');
        continue;
    }
    if (d.name === 'server' || d.name === 'location') {
      warn(d, `"${d.name}" outside "http"`);
      continue;
    }
    warn(d, 'not translated at the top level');
  }

  // A group that uwsgi_pass uses speaks uwsgi; its servers get uwsgi addresses.
  for (const [name, group] of Object.entries(upstreams)) {
    const protocol = upstreamProtocol.get(name) ?? 'http';
    group.servers = (group.servers as (string | Json)[]).map((server) => {
      const address = typeof server === 'string' ? server : (server.url as string);
      const url = /^(https?|uwsgi|uwsgi\+unix|unix):/.test(address) && !address.startsWith('unix:') ? address : serverUrl(address, protocol);
      return typeof server === 'string' ? url : { ...server, url };
    });
    if (!upstreamProtocol.has(name)) {
      const source = upstreamSource.get(name);
      if (source) keep(source, 'no proxy_pass or uwsgi_pass uses it; kept as an HTTP group');
    }
  }

  const byPlace = (a: ImportFinding, b: ImportFinding) => a.file.localeCompare(b.file) || a.line - b.line;
  warnings.sort(byPlace);
  kept.sort(byPlace);
  if (Object.keys(limits.connZones).length === 0) delete (limits as Partial<typeof limits>).connZones;
  if (Object.keys(limits.rateZones).length === 0) delete (limits as Partial<typeof limits>).rateZones;
  if (Object.keys(log).length > 0) config.log = log;
  if (Object.keys(http).filter((key) => http[key] !== undefined).length > 0) config.http = http;
  if (Object.keys(limits).length > 0) config.limits = limits;
  if (Object.keys(upstreams).length > 0) config.upstreams = upstreams;
  if (Object.keys(cacheZones).length > 0) config.cache = { zones: cacheZones };
  if (servers.length > 0) config.servers = servers;
  return { config: JSON.parse(JSON.stringify(config)) as Json, warnings, kept };
}
