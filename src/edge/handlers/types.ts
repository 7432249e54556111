/**
 * The content-handler contract (the extension point for static, redirect, respond, proxy, and later
 * app and forward-proxy handlers): a function of the request context that answers it,
 * synchronously or not, or returns REROUTE after changing `ctx.uri` (an internal redirect: the
 * pipeline searches the routes again). Throwing an HttpError answers with its status.
 */
import type { RequestContext } from '../context.js';

export const REROUTE = Symbol('reroute');
export type HandlerResult = void | undefined | typeof REROUTE;
export type Handler = (ctx: RequestContext) => HandlerResult | Promise<HandlerResult>;
