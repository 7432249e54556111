// The demo's app, served by `portico up` at /app/ on 2 worker processes (the gunicorn role):
// a Fetch handler, the same contract as Hono, Bun or Workers. Each answer names the worker
// that made it, so reloading the page shows the edge balancing over the workers.
let served = 0;

export default {
  fetch(request) {
    served += 1;
    const url = new URL(request.url);
    return Response.json({
      service: 'demo app',
      path: url.pathname,
      worker: process.pid,
      servedByThisWorker: served,
      client: request.headers.get('x-forwarded-for'),
    });
  },
};
