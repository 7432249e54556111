/**
 * Virtual hosts of one listen address: exact names, then wildcards ("*.example.com", longest
 * suffix first, as nginx), then the default server. Built once per generation.
 */
import type { CompiledServer } from './router.js';

export class HostTable {
  readonly #exact = new Map<string, CompiledServer>();
  readonly #wildcards: { readonly suffix: string; readonly server: CompiledServer }[] = [];
  readonly defaultServer: CompiledServer;

  /** `servers` in config order; the one marked default (or else the first) takes unknown hosts. */
  constructor(servers: readonly CompiledServer[]) {
    if (servers.length === 0) throw new Error('a listener needs at least one server');
    this.defaultServer = servers.find((s) => s.config.default) ?? (servers[0] as CompiledServer);
    for (const server of servers) {
      for (const name of server.config.names) {
        if (name.startsWith('*.')) {
          this.#wildcards.push({ suffix: name.slice(1), server });
          continue;
        }
        // An IPv6 name ("::1", as the schema takes it) arrives in Host as an IP-literal in
        // brackets ("[::1]:8080", RFC 3986 §3.2.2), which normaliseHost keeps: key it that way.
        const key = name.includes(':') ? `[${name}]` : name;
        if (!this.#exact.has(key)) this.#exact.set(key, server);
      }
    }
    this.#wildcards.sort((a, b) => b.suffix.length - a.suffix.length);
  }

  /** The server named `host` (already normalised), or undefined when no name matches. */
  lookup(host: string): CompiledServer | undefined {
    const exact = this.#exact.get(host);
    if (exact) return exact;
    for (const { suffix, server } of this.#wildcards) {
      // "*.example.com" matches "a.example.com" and "a.b.example.com", not "example.com".
      if (host.length > suffix.length && host.endsWith(suffix)) return server;
    }
    return undefined;
  }
}
