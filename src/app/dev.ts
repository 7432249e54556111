/**
 * The development server (Flask's built-in server, for Portico apps). Single process on purpose:
 * one import of the app at a time, re-imported when a file under the app's directory changes, and
 * errors shown for a person: message and stack in the terminal, an HTML page with the stack in the
 * response. Never for production: no workers, no heartbeat, and it tells the client its stack.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { basename, dirname, relative, sep } from 'node:path';
import { watch, type FSWatcher } from 'chokidar';
import { complain, say } from '../core/log.js';
import { loadApp } from './gateway/load-app.js';
import { createAppListener } from './gateway/listener.js';
import type { LoadedApp } from './gateway/types.js';

export interface DevOptions {
  readonly file: string;
  readonly host: string;
  readonly port: number;
}

const RELOAD_DEBOUNCE_MS = 100;

/** HTML-escapes text (a stack may contain `<`, quotes, user input echoed in a message). */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
}

function describeError(error: unknown): { title: string; stack: string } {
  if (error instanceof Error) return { title: `${error.name}: ${error.message}`, stack: error.stack ?? String(error) };
  return { title: String(error), stack: String(error) };
}

function errorPage(title: string, stack: string, where: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<style>body{font:14px/1.5 system-ui,sans-serif;margin:2rem;color:#222}h1{font-size:1.3rem;color:#b00020}pre{background:#f6f6f6;padding:1rem;overflow:auto}small{color:#666}</style>
</head><body>
<h1>${escapeHtml(title)}</h1>
<p>${escapeHtml(where)}</p>
<pre>${escapeHtml(stack)}</pre>
<small>portico dev: this page is shown by the development server only.</small>
</body></html>
`;
}

export class DevServer {
  readonly #options: DevOptions;
  #server: Server | null = null;
  #watcher: FSWatcher | null = null;
  #listener: ((req: IncomingMessage, res: ServerResponse) => void) | null = null;
  #loadError: unknown = null;
  #timer: NodeJS.Timeout | undefined;
  #generation = 0;

  constructor(options: DevOptions) {
    this.#options = options;
  }

  #onError = (error: unknown, req: IncomingMessage, res: ServerResponse): void => {
    const { title, stack } = describeError(error);
    complain(`\nportico dev: error in ${req.method} ${req.url}\n${stack}\n`);
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const body = errorPage(title, stack, `while handling ${req.method} ${req.url}`);
    res.writeHead(500, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' }).end(body);
  };

  /** Imports (again) the app; a failure is kept and shown for every request until a fix loads. */
  async load(): Promise<LoadedApp | null> {
    const generation = ++this.#generation;
    try {
      const app = await loadApp(this.#options.file, { fresh: true });
      if (generation !== this.#generation) return null; // a newer reload won
      this.#listener = createAppListener(app, { timeoutMs: 0, onError: this.#onError, waitUntil: (p) => void Promise.resolve(p).catch((e: unknown) => complain(`portico dev: waitUntil rejected: ${describeError(e).stack}`)) });
      this.#loadError = null;
      return app;
    } catch (error) {
      if (generation !== this.#generation) return null;
      this.#loadError = error;
      const { stack } = describeError((error as { cause?: unknown }).cause ?? error);
      complain(`\nportico dev: the app failed to load: ${(error as Error).message}\n${stack}\n`);
      return null;
    }
  }

  /** Loads the app, listens, and watches the app's directory. Resolves with the URL. */
  async start(): Promise<{ url: string; app: LoadedApp | null }> {
    const app = await this.load();
    const server = createServer((req, res) => {
      if (this.#loadError || !this.#listener) {
        const error = this.#loadError ?? new Error('the app is not loaded');
        const { title, stack } = describeError((error as { cause?: unknown }).cause ?? error);
        const body = errorPage(title, stack, `the app failed to load (${this.#options.file}); fix it and save: the server reloads`);
        res.writeHead(500, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' }).end(body);
        return;
      }
      this.#listener(req, res);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#options.port, this.#options.host, resolve);
    });
    this.#server = server;
    await this.#watch();
    const address = server.address();
    const port = address && typeof address === 'object' ? address.port : this.#options.port;
    const host = this.#options.host.includes(':') ? `[${this.#options.host}]` : this.#options.host;
    return { url: `http://${host}:${port}`, app };
  }

  /** Watches the app's folder; resolves once the watcher has scanned it (a save from then on is seen). */
  #watch(): Promise<void> {
    const dir = dirname(this.#options.file);
    // chokidar, not node:fs watch: Node 20's recursive fs.watch on Linux watches inodes, so after
    // one save by rename (vim, sed -i, most editors' atomic save) the file's later saves were not
    // seen and the old code kept answering 200. chokidar re-arms per path and reports an atomic
    // save as one change.
    const skipped = (path: string): boolean => {
      const inside = relative(dir, path);
      return inside !== '' && (inside.split(sep).some((part) => part === 'node_modules' || part.startsWith('.')) || inside.endsWith('~'));
    };
    this.#watcher = watch(dir, { ignoreInitial: true, ignored: skipped });
    this.#watcher.on('all', (_event, path) => {
      const name = relative(dir, path);
      clearTimeout(this.#timer);
      // Editors write a file in several steps (truncate, write, rename): one reload per burst.
      this.#timer = setTimeout(() => {
        say(`portico dev: ${name || basename(this.#options.file)} changed, reloading ${relative(process.cwd(), this.#options.file) || this.#options.file}`);
        void this.load().then((app) => app && say(`portico dev: reloaded (${app.kind} gateway)`));
      }, RELOAD_DEBOUNCE_MS);
    });
    this.#watcher.on('error', (error) => complain(`portico dev: file watching failed: ${error instanceof Error ? error.message : String(error)}`));
    const watcher = this.#watcher;
    return new Promise((resolve) => watcher.once('ready', () => resolve()));
  }

  async stop(): Promise<void> {
    clearTimeout(this.#timer);
    await this.#watcher?.close();
    const server = this.#server;
    if (!server) return;
    server.closeIdleConnections();
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        server.closeAllConnections();
      }, 2000);
      server.close(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
