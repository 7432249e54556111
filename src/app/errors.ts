/**
 * The app server's errors. Kept beside the app server (rather than in core/errors.ts's catalog) so
 * `app/` stands on its own; the codes follow the same `ERR_<AREA>_*` naming.
 *
 * - ERR_APP_NOT_FOUND: the app file does not exist (a usage error: exit 2).
 * - ERR_APP_EXPORT: the module loaded but exports nothing servable (a usage error: exit 2; the
 *   arbiter does not retry, the next attempt would fail the same way).
 * - ERR_APP_IMPORT: importing the module threw (it may be transient, e.g. a database not up yet, so
 *   the arbiter retries with backoff and gives up after a bound).
 * - ERR_APP_CRASH_LOOP: workers keep dying; the arbiter gave up (exit 1).
 * - ERR_APP_RESPONSE: a Fetch handler returned something that is not a Response (a 500).
 */
export type AppErrorCode = 'ERR_APP_NOT_FOUND' | 'ERR_APP_EXPORT' | 'ERR_APP_IMPORT' | 'ERR_APP_CRASH_LOOP' | 'ERR_APP_RESPONSE';

export class AppError extends Error {
  readonly code: AppErrorCode;
  constructor(code: AppErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'AppError';
  }
}
