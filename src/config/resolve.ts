/**
 * Parsed config → ResolvedConfig: each section resolves itself (config/sections/<name>.ts), in
 * the order their references need (upstreams and apps before the routes that name them, cache and
 * limit zones before the routes that use them, servers before the forward proxy that must not
 * share their addresses); then every problem found is reported at once, and the result is
 * deep-frozen. Server settings are merged into each route once here (nginx merges server →
 * location at load, never per request), relative paths made absolute. The result is plain JSON
 * (`portico check` prints it) and everything else is built from it; regexes stay source strings
 * here and are compiled per generation by the edge.
 */
import { resolve as resolvePath } from 'node:path';
import { ConfigError } from './errors.js';
import type { ResolvedApp, ResolvedConfig, ResolvedExternalApp, ResolvedUpstream } from './resolved.js';
import type { ParsedConfig } from './schema.js';
import { resolveApp, resolveExternalApp } from './sections/app.js';
import { resolveAcme } from './sections/acme.js';
import { resolveAdmin } from './sections/admin.js';
import { resolveState } from './sections/state.js';
import { resolveCacheZones } from './sections/cache.js';
import { resolveForward } from './sections/forward.js';
import { defaultPidFile, resolveHttp, resolveLog } from './sections/http.js';
import { resolveLimits } from './sections/limits.js';
import { checkManagedTls, checkServers, resolveServer } from './sections/server.js';
import { checkUpstream, resolveUpstream } from './sections/upstream.js';
import { listenKey } from './sections/values.js';

export { defaultPidFile } from './sections/http.js';
export { ENCODE_DEFAULTS } from './sections/server.js';

export function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value)) deepFreeze(inner);
  }
  return value;
}

/** Resolves a parsed config; `baseDir` anchors relative paths (the config file's folder). */
export function resolveConfig(parsed: ParsedConfig, baseDir: string, source: string | null): ResolvedConfig {
  const problems: string[] = [];
  const warnings: string[] = [];
  const upstreams = new Map<string, ResolvedUpstream>();
  for (const [name, group] of Object.entries(parsed.upstreams ?? {})) {
    const resolved = resolveUpstream(name, group);
    checkUpstream(resolved, problems);
    upstreams.set(name, resolved);
  }
  const apps = new Map<string, ResolvedApp>();
  const externalApps = new Map<string, ResolvedExternalApp>();
  for (const [name, parsedApp] of Object.entries(parsed.apps ?? {})) {
    if (parsedApp.command !== undefined) {
      const external = resolveExternalApp(name, parsedApp, baseDir, problems);
      externalApps.set(name, external.app);
      upstreams.set(external.upstream.name, external.upstream);
      continue;
    }
    const resolved = resolveApp(name, parsedApp, baseDir, problems);
    apps.set(name, resolved.app);
    // "app:NAME" cannot clash with a user's group: ":" is not allowed in upstream names.
    upstreams.set(resolved.upstream.name, resolved.upstream);
  }
  const http = resolveHttp(parsed.http, problems);
  const cacheZones = resolveCacheZones(parsed.cache, baseDir);
  const limits = resolveLimits(parsed.limits ?? { rateZones: {}, connZones: {} });
  const context = {
    baseDir,
    problems,
    warnings,
    upstreams,
    apps: new Map<string, { readonly upstream: string }>([...apps, ...externalApps]),
    cacheZones,
    limitZones: limits.names,
    httpMaxBodySize: http.maxBodySize,
  };
  const servers = (parsed.servers ?? []).map((server, i) => resolveServer(server, i, context));
  checkServers(servers, problems);
  const acme = resolveAcme(parsed.acme, baseDir, problems);
  checkManagedTls(servers, acme, problems, warnings);
  const forward = parsed.forward ? resolveForward(parsed.forward, baseDir, servers, cacheZones, problems) : null;
  const admin = resolveAdmin(parsed.admin, problems);
  const state = resolveState(parsed.state, problems);
  if (admin) {
    const key = listenKey(admin.listen);
    if ([...servers.flatMap((server) => server.listen), ...(forward?.listen ?? [])].some((address) => listenKey(address) === key)) problems.push(`admin.listen: expected an address of its own, got ${JSON.stringify(key)}, where a server or the forward proxy listens`);
  }
  if (problems.length > 0) throw new ConfigError(problems, source ?? undefined);
  return deepFreeze({
    source,
    log: resolveLog(parsed.log, baseDir),
    http,
    limits: limits.zones,
    upstreams: Object.fromEntries(upstreams),
    apps: Object.fromEntries(apps),
    externalApps: Object.fromEntries(externalApps),
    cache: { zones: cacheZones },
    workers: parsed.workers ?? null,
    acme,
    admin,
    state,
    gracefulTimeout: parsed.gracefulTimeout,
    pidFile: parsed.pidFile !== undefined ? resolvePath(baseDir, parsed.pidFile) : source !== null ? defaultPidFile(source) : null,
    servers,
    forward,
    warnings,
  });
}
