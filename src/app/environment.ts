/**
 * The environment an app's processes start with: portico's own, plus the app's `envFile` and
 * `env` (in that order: an inline value wins over the file's, as in Docker Compose). `NODE_ENV`
 * is "production" unless one of them sets it: frameworks (Express, Koa, React's server renderer)
 * show stack traces to clients and skip their caches without it, and an app behind the edge is
 * in production unless someone said otherwise (gunicorn and PM2 leave this to the user; Node
 * frameworks' own docs ask for it).
 *
 * The file is read each time a process starts, so a restart or reload picks up a change (a
 * rotated secret) without a config change.
 */
import { readFileSync } from 'node:fs';
import { parseEnv } from 'node:util';
import { log } from '../core/log.js';

export interface AppEnvironmentSettings {
  /** Variables over the file's. */
  readonly env?: Readonly<Record<string, string>>;
  /** Absolute path of a .env file (`KEY=value`, `#` comments, quoted values), or null. */
  readonly envFile?: string | null;
}

export function appEnvironment(settings: AppEnvironmentSettings, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  let fromFile: Record<string, string | undefined> = {};
  if (settings.envFile) {
    try {
      fromFile = parseEnv(readFileSync(settings.envFile, 'utf8'));
    } catch (error) {
      // Checked when the config loaded; gone or unreadable since. The process still starts
      // (a crash loop would not bring the file back), and the log says what it lacks.
      log().error({ err: error, envFile: settings.envFile }, 'app env file unreadable: the process starts without its variables');
    }
  }
  return { NODE_ENV: 'production', ...base, ...fromFile, ...settings.env };
}
