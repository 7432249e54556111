/**
 * A Lua script for the shared Redis, kept apart from the connection (redis.ts) so that what
 * only names scripts does not load node-redis into every process.
 */
import { createHash } from 'node:crypto';
import type { RedisClient } from './redis.js';

/** A Lua script run with EVALSHA (EVAL once when the server does not know it yet, after a restart). */
export class RedisScript {
  readonly source: string;
  readonly sha: string;

  constructor(source: string) {
    this.source = source;
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  async run(client: RedisClient, keys: string[], args: (string | Buffer)[]): Promise<unknown> {
    try {
      return await client.evalSha(this.sha, { keys, arguments: args });
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
      return client.eval(this.source, { keys, arguments: args });
    }
  }
}
