/**
 * Loads an app module and decides which gateway serves it.
 *
 * The rule, in order (docs/apps.md states the same):
 * 1. `export const gateway = 'fetch' | 'node'` decides, when present (any other value is an error).
 * 2. An object (or function) with a `fetch` method → Fetch (Hono, `export default { fetch }`).
 * 3. A Fastify instance (`ready`, `routing` and `server`) → Node, through `await app.ready()` then
 *    `app.routing(req, res)`.
 * 4. A Koa application (`callback` and `listen`) → Node, through `app.callback()`.
 * 5. An `http.Server` → Node, through its `request` listener.
 * 6. A function with 3 or more parameters, or carrying Express/Connect markers (`handle`, `use`,
 *    `listen`) → Node.
 * 7. A function with exactly 2 parameters → Node. This is where the guess can fail: a Fetch handler
 *    written `(request, context) => …` also has 2 parameters. Such an app must say
 *    `export const gateway = 'fetch'` (or use the object form `{ fetch }`). We lean to Node because
 *    every Node listener has 2 parameters while most Fetch handlers take 1, and a wrong guess fails
 *    loudly on the first request (a Request has no `setHeader`) instead of hanging.
 * 8. A function with 0 or 1 parameter → Fetch.
 * Anything else is an ERR_APP_EXPORT error naming the file.
 *
 * srvx (src/loader.ts) takes `fetch` from the module or its default export, and treats any other
 * default function as a Node handler; rules 7–8 depart from it so `export default (req) => new
 * Response()` works without the object wrapper, as Bun and Deno allow.
 */
import { Server } from 'node:http';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, extname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { AppError } from '../errors.js';
import type { FastifyLike, FetchHandler, GatewayKind, LoadedApp, NodeListener } from './types.js';

type Exported = Record<string, unknown>;

function describe(value: unknown): string {
  if (value === undefined) return 'no default export';
  if (value === null) return 'a default export of null';
  if (typeof value === 'function') return `a default export that is a function of ${value.length} parameters with no usable shape`;
  if (typeof value === 'object') {
    const keys = Object.keys(value).slice(0, 6);
    return `a default export that is an object without a fetch method${keys.length ? ` (keys: ${keys.join(', ')})` : ''}`;
  }
  return `a default export of type ${typeof value}`;
}

const HINT =
  'export default a Fetch handler (`export default { fetch(request) { return new Response("hi") } }` or `(request) => Response`), ' +
  'a Node listener (`(req, res) => …`: Express, Koa app.callback()), or a Fastify instance';

function isFastify(value: unknown): value is FastifyLike {
  if (!value || (typeof value !== 'object' && typeof value !== 'function')) return false;
  const v = value as Record<string, unknown>;
  return typeof v.ready === 'function' && typeof v.routing === 'function' && 'server' in v;
}

function isKoa(value: unknown): value is { callback(): NodeListener } {
  if (!value || typeof value !== 'object') return false;
  const v = value as Record<string, unknown>;
  return typeof v.callback === 'function' && typeof v.listen === 'function' && typeof v.fetch !== 'function';
}

function hasNodeMarkers(fn: object): boolean {
  const f = fn as Record<string, unknown>;
  return typeof f.handle === 'function' || typeof f.use === 'function' || typeof f.listen === 'function';
}

/** The module's app value: its default export, unwrapping the `{ default: { default } }` CommonJS interop shape. */
function pickDefault(mod: Exported): unknown {
  let value = mod.default;
  if (value && typeof value === 'object' && !('fetch' in value) && 'default' in value && Object.keys(value).length === 1) value = (value as Exported).default;
  // A module with no default but a named `fetch` (Bun's `export function fetch`) is a Fetch app.
  if (value === undefined && typeof mod.fetch === 'function') value = { fetch: mod.fetch };
  return value;
}

/** Reads `export const gateway`, if any. */
function gatewayOverride(mod: Exported, file: string): GatewayKind | undefined {
  const raw = mod.gateway;
  if (raw === undefined || raw === 'fetch' || raw === 'node') return raw;
  throw new AppError('ERR_APP_EXPORT', `${file}: \`export const gateway\` must be "fetch" or "node", got ${JSON.stringify(raw)}`);
}

/**
 * Decides the gateway of an imported module (pure apart from Fastify's `ready()`), or throws
 * ERR_APP_EXPORT naming `file`.
 */
export async function detectApp(mod: Exported, file: string): Promise<LoadedApp> {
  const value = pickDefault(mod);
  const override = gatewayOverride(mod, file);
  const fetchOf = (v: unknown): FetchHandler | undefined => {
    const f = (v as Exported | null | undefined)?.fetch;
    return typeof f === 'function' ? (f.bind(v) as FetchHandler) : undefined;
  };

  if (override === 'fetch') {
    const f = fetchOf(value) ?? (typeof value === 'function' ? (value as FetchHandler) : undefined);
    if (!f) throw new AppError('ERR_APP_EXPORT', `${file}: \`gateway = "fetch"\` but ${describe(value)}; ${HINT}`);
    return { kind: 'fetch', file, via: 'gateway = "fetch"', fetch: f };
  }
  if (override === 'node') {
    if (isFastify(value)) return fastify(value, file);
    if (isKoa(value)) return { kind: 'node', file, via: 'gateway = "node" (Koa app.callback())', listener: value.callback() };
    if (typeof value !== 'function') throw new AppError('ERR_APP_EXPORT', `${file}: \`gateway = "node"\` but ${describe(value)}; ${HINT}`);
    return { kind: 'node', file, via: 'gateway = "node"', listener: value as NodeListener };
  }

  const f = fetchOf(value);
  if (f) return { kind: 'fetch', file, via: 'fetch method', fetch: f };
  if (isFastify(value)) return fastify(value, file);
  if (isKoa(value)) return { kind: 'node', file, via: 'Koa app (callback())', listener: value.callback() };
  if (value instanceof Server) {
    const listener = value.listeners('request')[0] as NodeListener | undefined;
    if (!listener) throw new AppError('ERR_APP_EXPORT', `${file}: the default export is an http.Server without a request listener; ${HINT}`);
    return { kind: 'node', file, via: 'http.Server request listener', listener };
  }
  if (typeof value === 'function') {
    if (value.length >= 3 || hasNodeMarkers(value)) return { kind: 'node', file, via: value.length >= 3 ? 'function of 3+ parameters' : 'Express/Connect-style function', listener: value as NodeListener };
    if (value.length === 2) return { kind: 'node', file, via: 'function of 2 parameters (req, res); export const gateway = "fetch" if it is (request, context)', listener: value as NodeListener };
    return { kind: 'fetch', file, via: `function of ${value.length} parameter${value.length === 1 ? '' : 's'}`, fetch: value as FetchHandler };
  }
  throw new AppError('ERR_APP_EXPORT', `${file}: ${describe(value)}; ${HINT}`);
}

async function fastify(app: FastifyLike, file: string): Promise<LoadedApp> {
  // Fastify registers plugins and routes asynchronously; `routing` is only complete after ready().
  await app.ready();
  return { kind: 'node', file, via: 'Fastify instance (ready(), routing)', listener: (req, res) => app.routing(req, res) };
}

/** The absolute path of an app file, or ERR_APP_NOT_FOUND. */
export function resolveAppFile(path: string, cwd = process.cwd()): string {
  const file = resolve(cwd, path);
  if (!existsSync(file)) throw new AppError('ERR_APP_NOT_FOUND', `app file not found: ${path} (${file})`);
  return file;
}

const TS_EXTENSIONS = new Set(['.ts', '.mts', '.cts', '.tsx']);
let tsxRegistered = false;

/** Registers tsx process-wide (workers do, once): TypeScript imports anywhere in the app then work. */
export async function registerTypeScript(): Promise<void> {
  if (tsxRegistered) return;
  // Both hooks, as `node --import tsx` does: a .ts file outside a `"type": "module"` package is
  // CommonJS to Node, and with only the ESM hook Node 20's require(esm) path reports a false cycle.
  const [{ register }, cjs] = await Promise.all([import('tsx/esm/api'), import('tsx/cjs/api')]);
  cjs.register();
  register();
  tsxRegistered = true;
}

/**
 * Imports the app at `file` and detects its gateway. TypeScript loads through tsx (no build step).
 * `fresh` imports a new copy (and of its local imports, through tsImport's own namespace), for the
 * development server's reload; workers import once with tsx registered process-wide.
 */
export async function loadApp(file: string, options: { fresh?: boolean } = {}): Promise<LoadedApp> {
  let mod: Exported;
  try {
    const url = pathToFileURL(file).href;
    if (options.fresh) {
      // tsImport loads under its own namespace, so the app's local ES module imports are fresh
      // too; files Node takes for CommonJS (a .ts outside a "type": "module" package) live in the
      // require cache instead, so the app directory's entries are dropped from it first.
      const dir = dirname(file);
      const cache = createRequire(import.meta.url).cache;
      for (const key of Object.keys(cache)) if (key.startsWith(dir) && !key.includes('/node_modules/')) delete cache[key];
      const { tsImport } = await import('tsx/esm/api');
      mod = (await tsImport(`${url}?t=${Date.now()}`, import.meta.url)) as Exported;
    } else if (TS_EXTENSIONS.has(extname(file)) && !tsxRegistered) {
      const { tsImport } = await import('tsx/esm/api');
      mod = (await tsImport(url, import.meta.url)) as Exported;
    } else {
      mod = (await import(url)) as Exported;
    }
  } catch (error) {
    throw new AppError('ERR_APP_IMPORT', `${file}: importing the app failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
  return detectApp(mod, file);
}

/**
 * The app of a worker process. tsx is registered only when it is needed: for a TypeScript entry
 * file, or when a JavaScript app turns out to import TypeScript (the import fails with an unknown
 * extension or a syntax error; it is then retried once with tsx, through tsImport, so the ESM
 * loader does not answer from its cache of the failed modules). Why not always: its ESM hooks run on a loader thread of
 * their own, about 27 MiB of RSS per worker (measured on Node 20), for apps that are plain JS.
 */
export async function loadWorkerApp(file: string): Promise<LoadedApp> {
  if (TS_EXTENSIONS.has(extname(file))) {
    await registerTypeScript();
    return loadApp(file);
  }
  try {
    return await loadApp(file);
  } catch (error) {
    const cause = error instanceof AppError ? (error.cause as { code?: string; name?: string } | undefined) : undefined;
    if (tsxRegistered || !cause || (cause.code !== 'ERR_UNKNOWN_FILE_EXTENSION' && cause.name !== 'SyntaxError')) throw error;
    await registerTypeScript();
    try {
      // tsx's namespaced import: every module of the graph under new URLs, past the failed ones in the ESM cache.
      return await loadApp(file, { fresh: true });
    } catch {
      throw error;
    }
  }
}
