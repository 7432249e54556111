/**
 * One process's connection to the Redis that several Portico nodes share (`state.redis`), made
 * with node-redis, the client Redis recommends for new projects (its `timeout` with
 * `rejectInFlight` bounds every command, which a limit on the request path needs).
 *
 * It never makes a request wait on a Redis that is not there: commands are refused at once while
 * the client is not connected (no offline queue) and time out after `state.redis.timeout`; the
 * caller then decides as `state.onRedisDown` says. The client reconnects by itself with backoff
 * (100 ms doubling to 5 s). Going down and coming back are logged once each.
 */
import { createClient, RESP_TYPES } from 'redis';
import type { ResolvedState } from '../config/resolved.js';
import { log } from '../core/log.js';

/** The client with every bulk string read as a Buffer (cache bodies). */
function makeClient(settings: ResolvedState['redis']) {
  return createClient({
    url: settings.url,
    disableOfflineQueue: true,
    socket: {
      connectTimeout: Math.max(1_000, settings.timeout),
      reconnectStrategy: (retries: number) => Math.min(100 * 2 ** Math.min(retries, 6), 5_000) + Math.floor(Math.random() * 100),
    },
    commandOptions: { timeout: settings.timeout, rejectInFlight: true },
  });
}

export type RedisClient = ReturnType<typeof makeClient>;

export class SharedRedis {
  readonly client: RedisClient;
  /** The same connection, its bulk strings read as Buffers. */
  readonly binary;
  readonly prefix: string;
  readonly settings: ResolvedState;
  readonly #onChange = new Set<(up: boolean) => void>();
  #wasUp = false;
  #warnedDown = false;
  #closed = false;

  /**
   * Connects in the background: the caller goes on, and sees `up` false until the connection is
   * ready. `role` and `whileDown` (what this process does without Redis) go into the log lines.
   */
  constructor(settings: ResolvedState, role: string, whileDown: string) {
    this.settings = settings;
    this.prefix = settings.redis.prefix;
    this.client = makeClient(settings.redis);
    this.binary = this.client.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer });
    const where = redactedUrl(settings.redis.url);
    this.client.on('ready', () => {
      if (this.#wasUp) return;
      this.#wasUp = true;
      if (this.#warnedDown) log().info({ redis: where, role }, 'shared state: Redis is back');
      this.#warnedDown = false;
      for (const listener of this.#onChange) listener(true);
    });
    const down = (error: Error | null): void => this.#down(error, where, role, whileDown);
    this.client.on('error', (error: Error) => down(error));
    this.client.on('end', () => down(null));
    this.client.connect().catch((error: unknown) => down(error instanceof Error ? error : null));
  }

  /** Connected and ready for commands. */
  get up(): boolean {
    return this.client.isReady;
  }

  /** Calls `listener(true)` when the connection is ready again, `listener(false)` when it is lost. */
  onChange(listener: (up: boolean) => void): void {
    this.#onChange.add(listener);
  }

  /** A key in this fleet's namespace. */
  key(...parts: string[]): string {
    return this.prefix + parts.join(':');
  }

  #down(error: Error | null, where: string, role: string, whileDown: string): void {
    if (this.#closed) return;
    if (this.#wasUp) {
      this.#wasUp = false;
      for (const listener of this.#onChange) listener(false);
    }
    if (this.#warnedDown) return;
    this.#warnedDown = true;
    log().warn({ redis: where, role, err: error?.message }, `shared state: Redis unreachable; ${whileDown} until it is back (reconnecting with backoff)`);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#onChange.clear();
    try {
      if (this.client.isOpen) await this.client.close();
    } catch {
      this.client.destroy();
    }
  }
}

/** The URL without its password, for logs. */
export function redactedUrl(text: string): string {
  try {
    const url = new URL(text);
    if (url.password) url.password = '***';
    return url.toString();
  } catch {
    return '(invalid URL)';
  }
}
