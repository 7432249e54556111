/**
 * A controllable upstream for cache tests: each path answers as a test scripts it, and every
 * request it receives is counted and kept (method and headers), so a test can assert exactly
 * what reached the origin. A real node:http server on 127.0.0.1; nothing is mocked.
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { startNodeUpstream, type NodeUpstream } from './upstreams.js';

export interface Received {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
}

/** Answers the n-th request (1-based) for a path. */
export type Script = (req: IncomingMessage, res: ServerResponse, n: number) => void;

export interface ScriptedUpstream extends NodeUpstream {
  /** Scripts a path (the path without the query). */
  on(path: string, script: Script): void;
  /** Requests received for a path so far. */
  count(path: string): number;
  received(path: string): readonly Received[];
}

export async function startScriptedUpstream(): Promise<ScriptedUpstream> {
  const scripts = new Map<string, Script>();
  const log = new Map<string, Received[]>();
  const upstream = await startNodeUpstream((req, res) => {
    const path = (req.url ?? '/').split('?')[0] as string;
    let list = log.get(path);
    if (!list) log.set(path, (list = []));
    list.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    const script = scripts.get(path);
    if (!script) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('no script\n');
      return;
    }
    script(req, res, list.length);
  });
  return Object.assign(upstream, {
    on(path: string, script: Script) {
      scripts.set(path, script);
    },
    count: (path: string) => log.get(path)?.length ?? 0,
    received: (path: string) => log.get(path) ?? [],
  });
}

/** A script that answers 200 with these headers and a body naming the request count. */
export function answer(headers: Record<string, string | string[]>, status = 200): Script {
  return (_req, res, n) => {
    res.writeHead(status, { 'content-type': 'text/plain', ...headers });
    res.end(`body ${n}\n`);
  };
}
