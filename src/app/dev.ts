/**
 * The development server (Flask's built-in server, for Portico apps). Single process on purpose:
 * one import of the app at a time, re-imported when a file under the app's directory changes, and
 * errors shown for a person: message and stack in the terminal, an HTML page with the stack in the
 * response. Never for production: no workers, no heartbeat, and it tells the client its stack.
 */
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { basename, dirname, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
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

/**
 * tsx runs a TypeScript module of a CommonJS project (no package.json, or "type": "commonjs") as
 * a `data:` URL of the compiled code with the file's path in a `filePath=` parameter: a stack
 * frame of the app would print the whole compiled module. The frame names the file instead; its
 * line and column are the compiled code's, so it says so.
 */
const DATA_URL_FRAME = /data:text\/javascript,[^\n]*?[?&]filePath=([^\s):&]+)[^\s):]*(:\d+:\d+)/g;

function readableStack(stack: string): string {
  return stack.replace(DATA_URL_FRAME, (_match, path: string, position: string) => `${decodeURIComponent(path).replace(/\?.*$/, '')}${position} [compiled code]`);
}

function describeError(error: unknown): { title: string; stack: string } {
  if (error instanceof Error) return { title: `${error.name}: ${error.message}`, stack: readableStack(error.stack ?? String(error)) };
  return { title: String(error), stack: String(error) };
}

/** A stack frame's location: an absolute path or a file: URL, then line and column. */
const FRAME_LOCATION = /((?:file:\/\/)?\/[^\s():]+):(\d+):(\d+)\)?$/gm;

/**
 * The failing line of the app's own code, with two lines either side, from the first stack frame
 * in a file under `dir` (not node_modules): what a person fixes, before the frames of Portico
 * and Node. tsx maps frames of an ES module to the TypeScript source; a frame of compiled code
 * (see above) gets none, since its line is not the source's.
 */
export function codeFrame(stack: string, dir: string): string | null {
  for (const match of stack.matchAll(FRAME_LOCATION)) {
    // A "[compiled code]" frame (above) does not match: its position is not at the line's end.
    const [, location, lineText, columnText] = match as unknown as [string, string, string, string];
    const path = location.startsWith('file://') ? fileURLToPath(location) : location;
    if (!path.startsWith(dir + sep) || path.includes(`${sep}node_modules${sep}`)) continue;
    let lines: string[];
    try {
      lines = readFileSync(path, 'utf8').split('\n');
    } catch {
      continue;
    }
    const line = Number(lineText);
    const column = Number(columnText);
    if (line < 1 || line > lines.length) continue;
    const last = Math.min(lines.length, line + 2);
    const width = String(last).length;
    const out = [`${relative(process.cwd(), path) || path}:${line}:${column}`];
    for (let n = Math.max(1, line - 2); n <= last; n++) {
      out.push(`${n === line ? '>' : ' '} ${String(n).padStart(width)} | ${lines[n - 1] ?? ''}`);
      if (n === line) out.push(`  ${' '.repeat(width)} | ${' '.repeat(Math.max(0, column - 1))}^`);
    }
    return out.join('\n');
  }
  return null;
}

function errorPage(title: string, stack: string, where: string, frame: string | null): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<style>body{font:14px/1.5 system-ui,sans-serif;margin:2rem;color:#222}h1{font-size:1.3rem;color:#b00020}pre{background:#f6f6f6;padding:1rem;overflow:auto}pre.frame{background:#fff4f4}small{color:#666}</style>
</head><body>
<h1>${escapeHtml(title)}</h1>
<p>${escapeHtml(where)}</p>
${frame === null ? '' : `<pre class="frame">${escapeHtml(frame)}</pre>\n`}<pre>${escapeHtml(stack)}</pre>
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
    const frame = codeFrame(stack, dirname(this.#options.file));
    complain(`\nportico dev: error in ${req.method} ${req.url}\n${stack}\n${frame === null ? '' : `\n${frame}\n`}`);
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const body = errorPage(title, stack, `while handling ${req.method} ${req.url}`, frame);
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
        const body = errorPage(title, stack, `the app failed to load (${this.#options.file}); fix it and save: the server reloads`, codeFrame(stack, dirname(this.#options.file)));
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
