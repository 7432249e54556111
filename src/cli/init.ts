/**
 * `portico init [DIR]`: a commented starter `portico.config.ts` (static files, a reverse proxy and
 * an app), with the folder and the app module it names, so that `portico up` runs it at once and
 * `portico check` passes (a static root and an app module must exist). Files that are there already
 * are kept; an existing config is refused unless `--force`, as `npm init` and `cargo init` refuse
 * to clobber a project.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const STARTER_CONFIG = `// Portico's config: every field is typed (hover it in your editor) and checked when it loads.
// Run it with \`npx portico up\`; check it with \`npx portico check\`. Reference: docs/config.md in Portico's package.
//
// The import is for types only (erased when the config loads): the config works whether or not
// the portico package is installed in this project.
import type { UserConfig } from 'portico';

export default {
  // Edge worker processes default to one per core (\`workers: 4\` sets them).
  // Apps on Portico's own pre-forked workers (the gunicorn role). "web" runs ./app.ts.
  apps: {
    web: {
      module: './app.ts',
      workers: 2,
      // Variables for the app's processes; a .env file works too: envFile: '.env'.
      env: { GREETING: 'hello from app.ts' },
    },
  },
  servers: [
    {
      listen: '127.0.0.1:8080',
      // Files under ./public answer every route that has no handler of its own (nginx \`root\`).
      static: { root: './public', maxAge: '5m' },
      // On-the-fly gzip/brotli for text answers.
      encode: true,
      routes: [
        // The app answers /app/... (the path is passed on as received).
        { prefix: '/app/', app: 'web' },
        // Your API server, if you have one: requests to /api/... go there (nginx proxy_pass).
        // Until something listens on port 3000 they are answered 502.
        { prefix: '/api/', proxy: { to: 'http://127.0.0.1:3000' } },
        // A fixed answer for health checks.
        { exact: '/healthz', respond: { body: 'ok\\n' } },
        // Everything else: the static files.
        { prefix: '/' },
      ],
    },
  ],
} satisfies UserConfig;
`;

export const STARTER_APP = `// The app \`portico up\` runs for /app/ (apps.web in portico.config.ts): a Fetch handler.
// Node (req, res) listeners, Express, Fastify, Koa and Hono apps work too.
export default {
  fetch(request: Request): Response {
    const url = new URL(request.url);
    return Response.json({ message: process.env.GREETING, path: url.pathname, pid: process.pid });
  },
};
`;

export const STARTER_PAGE = `<!doctype html>
<html lang="en">
<meta charset="utf-8">
<title>Portico</title>
<h1>Portico is serving ./public</h1>
<p>Edit <code>portico.config.ts</code>; <a href="/app/">/app/</a> is answered by <code>app.ts</code>.</p>
</html>
`;

export interface InitResult {
  /** Files written, relative to the folder. */
  readonly written: string[];
  /** Files that were there already and were kept. */
  readonly kept: string[];
}

/** Writes the starter into `dir`; throws when a config is there already and `force` is not set. */
export function writeStarter(dir: string, force: boolean): InitResult {
  const config = join(dir, 'portico.config.ts');
  if (existsSync(config) && !force) throw new Error(`${config} exists already (--force replaces it)`);
  mkdirSync(join(dir, 'public'), { recursive: true });
  const written: string[] = [];
  const kept: string[] = [];
  const files: [string, string, boolean][] = [
    ['portico.config.ts', STARTER_CONFIG, true],
    ['app.ts', STARTER_APP, false],
    [join('public', 'index.html'), STARTER_PAGE, false],
  ];
  for (const [name, text, replace] of files) {
    const path = join(dir, name);
    if (existsSync(path) && !replace) {
      kept.push(name);
      continue;
    }
    writeFileSync(path, text);
    written.push(name);
  }
  return { written, kept };
}
