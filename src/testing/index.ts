/**
 * `import { createTestServer } from 'portico/testing'`: a config's edge in this process, asked
 * with `fetch(Request)` and no port. The config is checked as `portico check` checks it, and the
 * EdgeServer of a one-process node is built from it (routing, rewrites, limits, cache, static
 * files, the proxy to real upstreams, the config's apps: see startApps); each request goes over an in-memory connection
 * (memory-socket.ts) through node:http's parser and client, so what a test sees is what a client
 * of a listening Portico sees.
 */
import { validateConfig } from '../config/load.js';
import type { UserConfig } from '../config/schema.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAppListener } from '../app/gateway/listener.js';
import { loadApp } from '../app/gateway/load-app.js';
import type { ResolvedConfig, ResolvedUpstream } from '../config/resolved.js';
import { log, useErrorLog } from '../core/log.js';
import { UpstreamGroup } from '../edge/handlers/proxy/upstream.js';
import { createEdgeEnvironment } from '../edge/environment.js';
import { EdgeServer } from '../edge/server.js';
import { sendRequest } from './client.js';
import { memoryConnection } from './memory-socket.js';

export interface TestServerOptions {
  /** The folder relative paths of the config (static roots, htpasswd files) start from. @default process.cwd() */
  readonly baseDir?: string;
  /** The client address requests come from, unless a request says otherwise. @default "127.0.0.1" */
  readonly clientAddress?: string;
}

export interface TestRequestInit extends RequestInit {
  /** The client address of this request (for `access`, limits, `$remote_addr`). */
  readonly clientAddress?: string;
}

export interface TestServer {
  /**
   * Sends a request through the edge and resolves with its answer, as `fetch` with
   * `redirect: "manual"` would, but with the answer as Portico sent it: a redirect is returned,
   * not followed, and a compressed body stays compressed (see `Content-Encoding`). The URL's host
   * is the `Host` header; its port picks the listener (`listen` of the config), else the first one.
   */
  fetch(input: Request | string | URL, init?: TestRequestInit): Promise<Response>;
  /** The listen addresses of the config ("127.0.0.1:8080", ":80"). */
  readonly listeners: readonly string[];
  /** Closes the edge: upstream pools, cache zones, timers. */
  close(): Promise<void>;
}

export async function createTestServer(config: UserConfig, options: TestServerOptions = {}): Promise<TestServer> {
  // No access log unless the config asks for one: a test's output is its own.
  const withLog = config.log?.access === undefined ? { ...config, log: { ...config.log, access: false as const } } : config;
  const resolved = validateConfig(withLog, options.baseDir ?? process.cwd(), null);
  // The error log as the config says, but at "warn" unless it names a level: a test's output shows
  // problems, not each limited request.
  useErrorLog({ level: config.log?.level ?? 'warn', destination: resolved.log.error, format: resolved.log.format });
  const apps = await startApps(resolved);
  const edge = new EdgeServer(resolved, createEdgeEnvironment({ sharedUpstreams: apps.groups }));
  edge.startInMemory();
  const listeners = edge.listenerInfos();
  const sites = listeners.filter((listener) => listener.kind === 'site');
  let nextPort = 40000;

  const fetch = async (input: Request | string | URL, init?: TestRequestInit): Promise<Response> => {
    const request = new Request(input, init);
    const url = new URL(request.url);
    const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
    const listener = sites.find((candidate) => candidate.info.port === port) ?? sites[0] ?? listeners[0];
    if (!listener) throw new Error('the config has no listener');
    nextPort = nextPort >= 60000 ? 40000 : nextPort + 1;
    const [client, server] = memoryConnection({ clientAddress: init?.clientAddress ?? options.clientAddress ?? '127.0.0.1', clientPort: nextPort, serverAddress: '127.0.0.1', serverPort: listener.info.port });
    edge.inject(listener.key, server);
    return sendRequest(() => client, request);
  };

  return {
    fetch,
    listeners: listeners.map((listener) => listener.key),
    close: async () => {
      await edge.stop(0);
      await apps.stop();
    },
  };
}

/**
 * The config's apps, for the edge's `app` routes. A JavaScript/TypeScript app runs in this
 * process: its module loaded by the gateway the workers use (app/gateway), served by node:http on
 * a unix socket in a private folder (a socket file, no port), which its group's one member is, as
 * a worker's socket is under `portico up`. A WSGI app runs on its Python workers, as under
 * `portico up` (supervisor/apps.ts). An app's `env` is not applied in-process (the test's own
 * environment is the app's); `command` apps are not started (they are servers of their own).
 */
async function startApps(config: ResolvedConfig): Promise<{ groups: Map<string, UpstreamGroup>; stop(): Promise<void> }> {
  const groups = new Map<string, UpstreamGroup>();
  const stops: (() => Promise<void>)[] = [];
  const javascript = Object.values(config.apps).filter((app) => app.wsgi === null);
  const python = Object.values(config.apps).filter((app) => app.wsgi !== null);
  if (javascript.length > 0) {
    const dir = mkdtempSync(join(tmpdir(), 'portico-test-apps-'));
    stops.push(async () => rmSync(dir, { recursive: true, force: true }));
    for (const app of javascript) {
      const loaded = await loadApp(app.module);
      const pending = new Set<Promise<unknown>>();
      const listener = createAppListener(loaded, {
        timeoutMs: app.timeout,
        behindEdge: true,
        waitUntil: (promise) => {
          const tracked = Promise.resolve(promise).catch((error: unknown) => log().error({ err: error }, 'app waitUntil promise rejected'));
          pending.add(tracked);
          void tracked.finally(() => pending.delete(tracked));
        },
      });
      const server = createServer(listener);
      const path = join(dir, `${app.name}.sock`);
      await new Promise<void>((resolve, reject) => server.once('error', reject).listen(path, resolve));
      const group = new UpstreamGroup(config.upstreams[app.upstream] as ResolvedUpstream);
      group.addServer(`unix:${path}`);
      groups.set(app.upstream, group);
      stops.unshift(async () => {
        await group.close();
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
        await Promise.all(pending);
      });
    }
  }
  if (python.length > 0) {
    const { AppPools } = await import('../supervisor/apps.js');
    const pools = new AppPools({ ...config, apps: Object.fromEntries(python.map((app) => [app.name, app])) });
    for (const [name, group] of pools.groups) groups.set(name, group);
    stops.unshift(() => pools.stop());
    await pools.start();
  }
  return {
    groups,
    stop: async () => {
      for (const stop of stops) await stop();
    },
  };
}
