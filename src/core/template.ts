/**
 * Parses nginx-style templates ("https://$host$request_uri", "/docs/$1", "${uri}.html") into
 * literal and variable parts, once at config load. The edge evaluates the parts per request
 * (edge/variables.ts); the config schema uses `templateProblem` to refuse unknown variables.
 */

export type TemplatePart = { readonly kind: 'text'; readonly text: string } | { readonly kind: 'var'; readonly name: string } | { readonly kind: 'capture'; readonly index: number };

/** Variables every template may use; `http_<name>` (request header) and `arg_<name>` (query argument) too. */
export const TEMPLATE_VARIABLES = [
  'host', 'uri', 'document_uri', 'request_uri', 'scheme', 'https', 'args', 'query_string', 'is_args',
  'request_method', 'remote_addr', 'server_port', 'server_name',
  // For limit keys: `binary_remote_addr` as nginx configs spell it (here the same text as
  // `remote_addr`), and `route`, the id of the route serving the request ("servers[0].routes[2]");
  // `limit_req_status` as nginx's: PASSED, DELAYED or REJECTED once a rate limit applied; `pid`
  // as nginx's, the process serving the request (which edge worker).
  'binary_remote_addr', 'route', 'limit_req_status', 'pid',
  // For proxy request headers, as nginx configs write X-Forwarded-For.
  'proxy_add_x_forwarded_for',
] as const;

/**
 * Variables only an access log format knows (nginx `log_format`): what the response and the
 * upstream were, known once the request is over.
 */
export const LOG_VARIABLES = [
  'status', 'body_bytes_sent', 'request', 'request_time', 'time_local', 'time_iso8601', 'msec', 'remote_user', 'server_protocol',
  'upstream_addr', 'upstream_status', 'upstream_response_time', 'cache_status', 'ssl_protocol', 'ssl_cipher',
] as const;

const KNOWN = new Set<string>(TEMPLATE_VARIABLES);
// "${1}" is a capture like "$1" (parseTemplate handles a digit name; the braced form used to
// accept only letters, so "${1}" stayed literal text).
const VARIABLE = /\$(?:\{([a-z_][a-z0-9_]*|[0-9])\}|([0-9])|([a-z_][a-z0-9_]*))/gi;

export function parseTemplate(text: string): TemplatePart[] {
  const parts: TemplatePart[] = [];
  let last = 0;
  for (const match of text.matchAll(VARIABLE)) {
    if (match.index > last) parts.push({ kind: 'text', text: text.slice(last, match.index) });
    if (match[2] !== undefined) parts.push({ kind: 'capture', index: Number(match[2]) });
    else {
      const name = (match[1] ?? match[3] ?? '').toLowerCase();
      parts.push(/^[0-9]$/.test(name) ? { kind: 'capture', index: Number(name) } : { kind: 'var', name });
    }
    last = match.index + match[0].length;
  }
  if (last < text.length) parts.push({ kind: 'text', text: text.slice(last) });
  return parts;
}

/** Why a template cannot be used, or undefined when it is fine. */
export function templateProblem(text: string, extra: readonly string[] = []): string | undefined {
  // "${host" is not a variable for parseTemplate and would silently stay literal text (nginx
  // refuses it too: "the closing bracket in ... variable is missing").
  const unclosed = /\$\{(?!(?:[a-z_][a-z0-9_]*|[0-9])\})/i.exec(text);
  if (unclosed) return `unclosed or empty "\${" at offset ${unclosed.index} (write "\${name}")`;
  for (const part of parseTemplate(text)) {
    if (part.kind !== 'var') continue;
    if (KNOWN.has(part.name) || extra.includes(part.name) || /^(http|arg)_[a-z0-9_]+$/.test(part.name)) continue;
    return `unknown variable "$${part.name}" (known: ${[...TEMPLATE_VARIABLES, ...extra].map((v) => `$${v}`).join(', ')}, $http_<header>, $arg_<name>, $1..$9)`;
  }
  return undefined;
}
