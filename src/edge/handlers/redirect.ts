/** Route action `redirect`: the client is told to go elsewhere (RFC 9110 §15.4). */
import type { ResolvedHandler } from '../../config/resolved.js';
import { sendRedirect } from '../http/respond.js';
import { compileTemplate } from '../variables.js';
import type { Handler } from './types.js';

export function createRedirectHandler(config: Extract<ResolvedHandler, { type: 'redirect' }>): Handler {
  const target = compileTemplate(config.to);
  const status = config.status;
  return function redirect(ctx) {
    sendRedirect(ctx, status, target(ctx));
  };
}
