/** Route action `respond`: a fixed answer (nginx `return code text`). */
import type { ResolvedHandler } from '../../config/resolved.js';
import { sendBody } from '../http/respond.js';
import { compileTemplate, isConstantTemplate } from '../variables.js';
import type { Handler } from './types.js';

export function createRespondHandler(config: Extract<ResolvedHandler, { type: 'respond' }>): Handler {
  const { status } = config;
  const headers = config.headers.flat();
  if (config.body === null || isConstantTemplate(config.body)) {
    // Built once: the same bytes for every request.
    const body = config.body === null ? null : Buffer.from(config.body);
    return function respond(ctx) {
      sendBody(ctx, status, headers.slice(), body);
    };
  }
  const body = compileTemplate(config.body);
  return function respond(ctx) {
    sendBody(ctx, status, headers.slice(), body(ctx));
  };
}
