/**
 * One `http.Server` request listener for a loaded app, whatever its gateway (used by the workers
 * and the development server).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { installFastResponse } from './fast-response.js';
import { fetchListener } from './fetch.js';
import { installLazyRequest } from './lazy-request.js';
import { nodeListener, type GatewayOptions } from './node.js';
import type { LoadedApp } from './types.js';

/** One request listener for `app`, whatever its gateway. */
export function createAppListener(app: LoadedApp, options: GatewayOptions): (req: IncomingMessage, res: ServerResponse) => void {
  if (app.kind === 'fetch') {
    // The lighter Request and Response of a Fetch app (fast-response.ts, lazy-request.ts).
    installFastResponse();
    installLazyRequest();
    return fetchListener(app.fetch, options);
  }
  return nodeListener(app.listener, options);
}
