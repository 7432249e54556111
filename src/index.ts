/**
 * The public API of the `portico` package: `defineConfig` and the config types. No side effects.
 */
export { defineConfig } from './config/define.js';
export type { UserConfig } from './config/schema.js';
export type { ResolvedConfig, ResolvedServer, ResolvedRoute } from './config/resolve.js';
