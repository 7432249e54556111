// The admin dashboard: polls GET /stats every second and draws what changed since the last poll
// (rates from counters, p50/p99 from the histogram's buckets). Drain and enable are the admin
// API's POSTs, sent as JSON from this same origin. With an admin token the page asks for it once
// and keeps it for the tab (sessionStorage).
(() => {
  'use strict';
  const WINDOW = 120;
  const CLASSES = ['2xx', '3xx', '4xx', '5xx'];
  const COLORS = { '2xx': '#1a7f37', '3xx': '#0969da', '4xx': '#b35900', '5xx': '#cf222e' };
  const times = [];
  const rates = Object.fromEntries(CLASSES.map((c) => [c, []]));
  const p50s = [];
  const p99s = [];
  let previous = null;
  let token = sessionStorage.getItem('portico-admin-token');

  const $ = (id) => document.getElementById(id);
  const headers = (json) => ({ ...(json ? { 'content-type': 'application/json' } : {}), ...(token ? { authorization: `Bearer ${token}` } : {}) });

  function chart(element, series) {
    const width = () => Math.max(280, element.clientWidth);
    const plot = new uPlot({ width: width(), height: 220, series: [{}, ...series], axes: [{}, { size: 50 }], legend: { live: false } }, [[], ...series.map(() => [])], element);
    addEventListener('resize', () => plot.setSize({ width: width(), height: 220 }));
    return plot;
  }
  const rateChart = chart($('rate-chart'), CLASSES.map((c) => ({ label: c, stroke: COLORS[c], width: 2 })));
  const latencyChart = chart($('latency-chart'), [{ label: 'p50', stroke: '#0969da', width: 2 }, { label: 'p99', stroke: '#cf222e', width: 2 }]);

  /** The q-quantile (ms) of the requests between two polls, from cumulative bucket counts (linear within a bucket, as Prometheus' histogram_quantile). */
  function quantile(q, now, before) {
    const bounds = Object.keys(now).filter((le) => le !== '+Inf').map(Number).sort((a, b) => a - b);
    const count = (le) => (now[le] ?? 0) - ((before && before[le]) ?? 0);
    const total = count('+Inf');
    if (total <= 0) return null;
    const rank = q * total;
    let lower = 0;
    let below = 0;
    for (const bound of bounds) {
      const inBucket = count(String(bound));
      if (inBucket >= rank) return 1000 * (lower + ((bound - lower) * (rank - below)) / Math.max(1, inBucket - below));
      lower = bound;
      below = inBucket;
    }
    return 1000 * lower;
  }

  const fmt = (n, digits = 1) => (n === null || !Number.isFinite(n) ? '–' : n >= 100 ? Math.round(n).toLocaleString() : n.toFixed(digits));

  async function api(path, init) {
    const res = await fetch(path, { ...init, headers: headers(init && init.method === 'POST') });
    if (res.status === 401) {
      token = prompt('Admin token') || '';
      sessionStorage.setItem('portico-admin-token', token);
      throw new Error('token required');
    }
    if (!res.ok) throw new Error(`${path}: ${res.status}`);
    return res.json();
  }

  function renderUpstreams(groups) {
    const body = $('upstreams').tBodies[0];
    body.replaceChildren();
    for (const group of groups) {
      for (const server of group.servers) {
        const state = server.drained ? 'drained' : !server.healthy ? 'unhealthy' : server.down ? 'down' : 'up';
        const row = body.insertRow();
        row.dataset.server = server.url;
        for (const text of [group.name, server.url, state, server.inFlight, server.attempts, server.failures]) row.insertCell().textContent = String(text);
        row.cells[2].className = `state-${state}`;
        const button = document.createElement('button');
        button.textContent = server.drained ? 'enable' : 'drain';
        button.dataset.action = server.drained ? 'enable' : 'drain';
        button.onclick = async () => {
          button.disabled = true;
          try {
            await api(`/upstreams/${encodeURIComponent(group.name)}/${encodeURIComponent(server.url)}/${button.dataset.action}`, { method: 'POST', body: '{}' });
          } finally {
            void poll();
          }
        };
        row.insertCell().append(button);
      }
    }
  }

  function renderWorkers(status, stats) {
    const body = $('workers').tBodies[0];
    body.replaceChildren();
    const perPid = stats.processRequests || {};
    const rows = status.edgeWorkers.length > 0 ? status.edgeWorkers.map((w) => ['edge worker', w.pid, w.state, perPid[w.pid] ?? '', '']) : [['edge (supervisor)', status.pid, status.state, perPid[status.pid] ?? '', '']];
    for (const [name, app] of Object.entries(status.apps)) {
      for (const w of app.workers) rows.push([`app ${name}`, w.pid, w.state, w.requests, app.crashes]);
    }
    for (const cells of rows) {
      const row = body.insertRow();
      for (const text of cells) row.insertCell().textContent = String(text);
    }
  }

  async function poll() {
    let stats, status, upstreams;
    try {
      [stats, status, upstreams] = await Promise.all([api('/stats'), api('/status'), api('/upstreams')]);
    } catch (error) {
      $('node').textContent = `unreachable: ${error.message}`;
      return;
    }
    $('node').textContent = `pid ${status.pid} · ${status.state} · up ${status.uptimeSeconds}s · config generation ${status.generation} · ${status.edgeWorkers.length || 1} edge process(es)`;
    if (previous) {
      const seconds = Math.max(0.001, (stats.at - previous.at) / 1000);
      times.push(stats.at / 1000);
      let all = 0;
      for (const c of CLASSES) {
        const rate = ((stats.requests[c] ?? 0) - (previous.requests[c] ?? 0)) / seconds;
        rates[c].push(rate);
        all += rate;
      }
      const p50 = quantile(0.5, stats.durationBuckets, previous.durationBuckets);
      const p99 = quantile(0.99, stats.durationBuckets, previous.durationBuckets);
      p50s.push(p50);
      p99s.push(p99);
      if (times.length > WINDOW) {
        times.shift();
        for (const c of CLASSES) rates[c].shift();
        p50s.shift();
        p99s.shift();
      }
      rateChart.setData([times, ...CLASSES.map((c) => rates[c])]);
      latencyChart.setData([times, p50s, p99s]);
      $('rps').textContent = fmt(all);
      $('errors').textContent = fmt(rates['5xx'][rates['5xx'].length - 1]);
      $('p50').textContent = p50 === null ? '–' : `${fmt(p50, 2)} ms`;
      $('p99').textContent = p99 === null ? '–' : `${fmt(p99, 2)} ms`;
      const hit = (stats.cache.hit ?? 0) - (previous.cache.hit ?? 0) + (stats.cache.stale ?? 0) - (previous.cache.stale ?? 0);
      const lookups = Object.values(stats.cache).reduce((a, b) => a + b, 0) - Object.values(previous.cache).reduce((a, b) => a + b, 0);
      $('hits').textContent = lookups > 0 ? `${Math.round((100 * hit) / lookups)} %` : '–';
      document.body.dataset.polls = String(times.length);
    }
    $('connections').textContent = String(stats.openConnections);
    renderUpstreams(upstreams.upstreams);
    renderWorkers(status, stats);
    previous = stats;
  }

  void poll();
  setInterval(poll, 1000);
})();
