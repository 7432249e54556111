/**
 * Template evaluation against a request: the compiled form of core/template.ts. Compiled once per
 * generation; a template without variables costs nothing per request.
 */
import { parseTemplate } from '../core/template.js';
import type { RequestContext } from './context.js';

export type Template = (ctx: RequestContext) => string;

export type Getter = (ctx: RequestContext) => string;

/**
 * `$arg_<name>`: the first argument called `name`. Names compare case-insensitively, as nginx's
 * ngx_http_arg does; this is also the only way `$arg_userId` can work, since template variable
 * names are lower-cased when parsed (core/template.ts). `name` is lower case already.
 */
function argument(query: string, name: string): string {
  for (const pair of query.split('&')) {
    const eq = pair.indexOf('=');
    const key = eq === -1 ? pair : pair.slice(0, eq);
    if (key.length === name.length && key.toLowerCase() === name) return eq === -1 ? '' : pair.slice(eq + 1);
  }
  return '';
}

function getter(name: string): Getter {
  switch (name) {
    case 'host': return (ctx) => ctx.host || (ctx.server?.primaryName ?? '');
    case 'uri':
    case 'document_uri': return (ctx) => ctx.uri;
    case 'request_uri': return (ctx) => ctx.requestUri;
    case 'scheme': return (ctx) => ctx.listener.scheme;
    // nginx $https: "on" on a TLS connection, else empty.
    case 'https': return (ctx) => (ctx.listener.scheme === 'https' ? 'on' : '');
    case 'args':
    case 'query_string': return (ctx) => ctx.query;
    case 'is_args': return (ctx) => (ctx.query !== '' ? '?' : '');
    case 'request_method': return (ctx) => ctx.req.method ?? '';
    case 'remote_addr':
    case 'binary_remote_addr': return (ctx) => ctx.clientAddress;
    case 'route': return (ctx) => ctx.route?.id ?? '';
    case 'limit_req_status': return (ctx) => ctx.limitReqStatus;
    case 'pid': {
      const pid = String(process.pid);
      return () => pid;
    }
    case 'server_port': return (ctx) => String(ctx.listener.port);
    case 'server_name': return (ctx) => ctx.server?.primaryName ?? '';
    // nginx's: the client's X-Forwarded-For with the client's address appended (or the address alone).
    case 'proxy_add_x_forwarded_for': return (ctx) => {
      const value = ctx.req.headers['x-forwarded-for'];
      const given = Array.isArray(value) ? value.join(', ') : value;
      return given ? `${given}, ${ctx.clientAddress}` : ctx.clientAddress;
    };
  }
  if (name.startsWith('http_')) {
    const header = name.slice(5).replace(/_/g, '-');
    return (ctx) => {
      const value = ctx.req.headers[header];
      return Array.isArray(value) ? value.join(', ') : (value ?? '');
    };
  }
  if (name.startsWith('arg_')) {
    const arg = name.slice(4).toLowerCase();
    return (ctx) => argument(ctx.query, arg);
  }
  // The schema refuses unknown variables; this is only reached by programmatic misuse.
  throw new Error(`unknown variable $${name}`);
}

/** Compiles a template; the config was validated, so every variable name is known. */
export function compileTemplate(text: string): Template {
  return compileTemplateWith(text);
}

/**
 * As compileTemplate; `extra` gives the getters of variables only some templates know (an access
 * log format's), and `wrap` is applied to each variable's getter (the access log escapes what it
 * writes).
 */
export function compileTemplateWith(text: string, extra?: (name: string) => Getter | undefined, wrap?: (get: Getter) => Getter): Template {
  const parts: (string | Getter)[] = parseTemplate(text).map((part) => {
    if (part.kind === 'text') return part.text;
    if (part.kind === 'capture') {
      const index = part.index;
      return (ctx: RequestContext) => ctx.captures?.[index] ?? '';
    }
    const get = extra?.(part.name) ?? getter(part.name);
    return wrap ? wrap(get) : get;
  });
  if (parts.length === 0) return () => '';
  if (parts.length === 1 && typeof parts[0] === 'string') {
    const constant = parts[0];
    return () => constant;
  }
  return (ctx) => {
    let out = '';
    for (const part of parts) out += typeof part === 'string' ? part : part(ctx);
    return out;
  };
}

/** True when the template uses no variables (its value is known at load). */
export function isConstantTemplate(text: string): boolean {
  return parseTemplate(text).every((part) => part.kind === 'text');
}
