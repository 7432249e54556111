/**
 * The public API of the `portico` package: `defineConfig`, the config types and the app gateway
 * types. No side effects.
 */
export { defineConfig } from './config/define.js';
export type { UserConfig } from './config/schema.js';
export type { ResolvedConfig, ResolvedServer, ResolvedRoute } from './config/resolved.js';
// The app server's gateway interface (the contract of an app module; see docs/apps.md).
export type { AppContext, AppModule, FastifyLike, FetchApp, FetchHandler, GatewayKind, NodeListener } from './app/gateway/types.js';
