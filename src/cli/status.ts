/**
 * `portico status`: a terminal view of a running node through its admin API (`GET /status` and
 * `GET /upstreams`): listeners, workers, apps, upstream health, cache zones, certificates.
 */
import { request } from 'node:http';
import type { ResolvedAdmin } from '../config/resolved.js';

export interface AdminTarget {
  /** "http://127.0.0.1:2019" or "unix:/path.sock". */
  readonly url: string;
  readonly token: string | null;
}

/** The admin API's address as a client reaches it. */
export function adminTarget(admin: ResolvedAdmin): AdminTarget {
  const listen = admin.listen;
  if (listen.kind === 'unix') return { url: `unix:${listen.path}`, token: admin.token };
  const host = listen.host === '' || listen.host === '0.0.0.0' ? '127.0.0.1' : listen.host === '::' ? '::1' : listen.host;
  return { url: `http://${host.includes(':') ? `[${host}]` : host}:${listen.port}`, token: admin.token };
}

/** GET `path` from the admin API as JSON. */
export function adminGet(target: AdminTarget, path: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const unix = target.url.startsWith('unix:') ? target.url.slice(5) : null;
    const url = unix === null ? new URL(target.url) : null;
    const req = request(
      {
        ...(unix !== null ? { socketPath: unix } : { host: url?.hostname.replace(/^\[|\]$/g, ''), port: url?.port }),
        path,
        headers: { ...(url ? { host: url.host } : {}), ...(target.token ? { authorization: `Bearer ${target.token}` } : {}), accept: 'application/json' },
        timeout: 5000,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
        res.on('end', () => {
          try {
            const parsed = JSON.parse(body) as { error?: string };
            if ((res.statusCode ?? 500) >= 400) reject(new Error(`${path}: ${res.statusCode} ${parsed.error ?? body}`));
            else resolve(parsed);
          } catch {
            reject(new Error(`${path}: ${res.statusCode}: not JSON`));
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${target.url}${path}: no answer within 5 s`)));
    req.on('error', (error: NodeJS.ErrnoException) => reject(error.code === 'ECONNREFUSED' || error.code === 'ENOENT' ? new Error(`no admin API at ${target.url} (is portico up running with "admin" in its config?)`) : error));
    req.end();
  });
}

type Json = Record<string, unknown>;

const ago = (seconds: number): string => {
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m${String(seconds % 60).padStart(2, '0')}s`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h${String(Math.floor((seconds % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(seconds / 86400)}d${Math.floor((seconds % 86400) / 3600)}h`;
};

const bytes = (n: number): string => (n >= 1 << 30 ? `${(n / (1 << 30)).toFixed(1)} GiB` : n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`);

/** The lines of the terminal view. */
export function renderStatus(status: Json, upstreams: Json): string[] {
  const lines: string[] = [];
  const reload = status.lastReload as { at: number; ok: boolean; trigger: string; problem: string | null } | null;
  lines.push(`portico ${String(status.version)} · pid ${String(status.pid)} · ${String(status.state)} · up ${ago(status.uptimeSeconds as number)} · config generation ${String(status.generation)}${reload ? ` (last reload ${reload.ok ? 'ok' : `refused: ${reload.problem ?? ''}`}, ${ago(Math.round((Date.now() - reload.at) / 1000))} ago, ${reload.trigger})` : ''}`);
  if (status.source) lines.push(`config ${String(status.source)}`);
  lines.push('', 'listeners');
  for (const listener of status.listeners as { url: string; kind: string }[]) lines.push(`  ${listener.url}${listener.kind === 'site' ? '' : `  (${listener.kind})`}`);
  const workers = status.edgeWorkers as { pid: number; state: string }[];
  lines.push('', workers.length === 0 ? 'edge: in the supervisor process (workers: 1)' : `edge workers: ${workers.filter((w) => w.state === 'serving').length} serving of ${workers.length} (pids ${workers.map((w) => w.pid).join(', ')})`);
  const apps = Object.entries(status.apps as Record<string, { target: number; started: number; crashes: number; workers: { pid: number; state: string; requests: number }[] }>);
  if (apps.length > 0) {
    lines.push('', 'apps');
    for (const [name, app] of apps) lines.push(`  ${name.padEnd(16)} ${app.workers.length}/${app.target} workers (pids ${app.workers.map((w) => w.pid).join(', ')}), ${app.workers.reduce((sum, w) => sum + w.requests, 0)} requests, ${app.started} started, ${app.crashes} crashed`);
  }
  const groups = upstreams.upstreams as { name: string; balance: string; servers: { url: string; healthy: boolean; down: boolean; drained: boolean; inFlight: number; attempts: number; failures: number }[] }[];
  const shown = groups.filter((group) => !group.name.startsWith('app:') || group.servers.length > 0);
  if (shown.length > 0) {
    lines.push('', 'upstreams');
    for (const group of shown) {
      lines.push(`  ${group.name} (${group.balance})`);
      for (const server of group.servers) {
        const state = server.drained ? 'drained' : !server.healthy ? 'unhealthy' : server.down ? 'down' : 'up';
        lines.push(`    ${server.url.padEnd(36)} ${state.padEnd(9)} in flight ${String(server.inFlight).padEnd(4)} attempts ${String(server.attempts).padEnd(7)} failures ${server.failures}`);
      }
    }
  }
  const zones = (status.cacheZones as { name: string; memory: { entries: number; bytes: number; maxBytes: number }; disk: { entries: number; bytes: number; maxBytes: number } | null }[] | null) ?? [];
  if (zones.length > 0) {
    lines.push('', 'cache zones');
    for (const zone of zones) lines.push(`  ${zone.name.padEnd(16)} memory ${zone.memory.entries} entries, ${bytes(zone.memory.bytes)} of ${bytes(zone.memory.maxBytes)}${zone.disk ? `; disk ${zone.disk.entries} entries, ${bytes(zone.disk.bytes)} of ${bytes(zone.disk.maxBytes)}` : ''}`);
  } else if (workers.length > 0) lines.push('', 'cache zones: per edge worker (see GET /metrics: portico_cache_entries, portico_cache_bytes)');
  const certificates = status.certificates as { name: string; issuer: string; state: string; issuedBy: string | null; notAfter: string | null; renewAt: string | null; lastError: string | null }[];
  if (certificates.length > 0) {
    lines.push('', 'certificates');
    for (const c of certificates) lines.push(`  ${c.name.padEnd(28)} ${c.issuer.padEnd(8)} ${c.state.padEnd(9)} ${c.notAfter ? `expires ${c.notAfter}` : ''}${c.renewAt ? `, renews ${c.renewAt}` : ''}${c.issuedBy ? `, by ${c.issuedBy}` : ''}${c.lastError ? `; last error: ${c.lastError}` : ''}`);
  }
  return lines;
}
