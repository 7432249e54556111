/**
 * Rewrite (internal: the client never sees it) with nginx `rewrite` semantics. A rule tests its
 * regex against `$uri`; on a match the URI becomes the expanded replacement. Flags:
 * `last` stops and searches the routes again; `break` stops and stays in this route;
 * `redirect`/`permanent` (or a replacement starting with http:// or https://) answer 302/301;
 * without a flag the next rule runs, and the routes are searched again at the end if the URI
 * changed. Arguments of the request are appended to a replacement with its own "?…" unless the
 * replacement ends with "?" (nginx).
 */
import type { ResolvedRewrite } from '../../config/resolved.js';
import type { RequestContext } from '../context.js';
import { removeDotSegments } from '../http/target.js';
import { sendRedirect } from '../http/respond.js';
import { compileTemplate, type Template } from '../variables.js';

export interface CompiledRewrite {
  readonly re: RegExp;
  readonly to: Template;
  readonly flag: ResolvedRewrite['flag'];
  /** The replacement has its own query ("?…"); with `dropArgs`, the request's args are dropped. */
  readonly hasQuery: boolean;
  readonly dropArgs: boolean;
  readonly absolute: boolean;
}

export const enum RewriteOutcome {
  /** No rule changed the URI, or `break`: go on in the current route. */
  Stay = 0,
  /** The URI changed (no flag or `last`): search the routes again. */
  Rematch = 1,
  /** A redirect was sent: the request is answered. */
  Answered = 2,
}

export function compileRewrites(rules: readonly ResolvedRewrite[]): CompiledRewrite[] {
  return rules.map((rule) => ({
    re: new RegExp(rule.from, rule.caseInsensitive ? 'i' : ''),
    to: compileTemplate(rule.to),
    flag: rule.flag,
    hasQuery: rule.to.includes('?'),
    dropArgs: rule.to.endsWith('?'),
    absolute: /^https?:\/\//i.test(rule.to),
  }));
}

function withArgs(target: string, rule: CompiledRewrite, args: string): string {
  if (rule.dropArgs) return target.slice(0, -1);
  if (args === '') return target;
  return target + (rule.hasQuery ? '&' : '?') + args;
}

/** Runs `rules` against `ctx.uri`. At server level every outcome but Answered leads to route selection (nginx). */
export function runRewrites(ctx: RequestContext, rules: readonly CompiledRewrite[]): RewriteOutcome {
  let changed = false;
  for (const rule of rules) {
    const captures = rule.re.exec(ctx.uri);
    if (!captures) continue;
    ctx.captures = captures;
    const expanded = rule.to(ctx);
    if (rule.absolute || rule.flag === 'redirect' || rule.flag === 'permanent') {
      sendRedirect(ctx, rule.flag === 'permanent' ? 301 : 302, withArgs(expanded, rule, ctx.query));
      return RewriteOutcome.Answered;
    }
    const q = expanded.indexOf('?');
    // The replacement is a decoded path, like $uri; normalising it keeps captures from climbing out.
    ctx.uri = removeDotSegments(q === -1 ? expanded : expanded.slice(0, q));
    if (q !== -1) {
      const own = expanded.slice(q + 1);
      ctx.query = rule.dropArgs || ctx.query === '' ? own.replace(/\?$/, '') : own === '' ? ctx.query : `${own}&${ctx.query}`;
      ctx.hasQuery = ctx.query !== '';
    }
    changed = true;
    ctx.rewritten = true;
    if (rule.flag === 'break') return RewriteOutcome.Stay;
    if (rule.flag === 'last') return RewriteOutcome.Rematch;
  }
  return changed ? RewriteOutcome.Rematch : RewriteOutcome.Stay;
}
