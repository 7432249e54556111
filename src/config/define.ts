import type { UserConfig } from './schema.js';

/**
 * Identity function that gives `portico.config.ts` its types (as Vite's `defineConfig`):
 *
 * ```ts
 * import { defineConfig } from 'portico';
 * export default defineConfig({ servers: [{ listen: ':8080', static: { root: './public' } }] });
 * ```
 */
export function defineConfig(config: UserConfig): UserConfig {
  return config;
}
