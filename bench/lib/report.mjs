// Results of bench/run.mjs: per-scenario summaries (medians of per-round ratios to the reference),
// the terminal / README table (markdown), and the SVG chart of the ratios.

export const median = (values) => {
  const s = values.filter(Number.isFinite).sort((a, b) => a - b);
  const n = s.length;
  if (n === 0) return NaN;
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
};

const fmt = (x, digits = 0) => (Number.isFinite(x) ? x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }) : 'n/a');

/** Per server of a scenario: medians, and ratios to the reference taken within each round. */
export function summarise(scenario, runs) {
  const mine = runs.filter((r) => r.scenario === scenario.name);
  const names = [...new Set(mine.map((r) => r.server))];
  const ref = scenario.reference;
  return names.map((server) => {
    const rows = mine.filter((r) => r.server === server);
    const unavailable = rows.find((r) => r.unavailable)?.unavailable;
    if (unavailable) return { server, unavailable };
    const failed = rows.filter((r) => r.error);
    const ok = rows.filter((r) => !r.error);
    if (ok.length === 0) return { server, unavailable: failed[0]?.error ?? 'no run' };
    if (scenario.kind === 'idle') {
      return {
        server,
        rounds: ok.length,
        kibPerConnection: median(ok.map((r) => r.kib_per_conn)),
        connections: median(ok.map((r) => r.conns_ok)),
        failedConnections: median(ok.map((r) => r.conns_failed)),
        rssBaseMiB: median(ok.map((r) => r.rss_base_kb)) / 1024,
        rssMiB: median(ok.map((r) => r.rss_kb)) / 1024,
      };
    }
    const perRound = (field) =>
      ok.map((r) => {
        const base = mine.find((x) => x.server === ref && x.round === r.round && !x.error && !x.unavailable);
        return base && base[field] ? r[field] / base[field] : NaN;
      }).filter(Number.isFinite);
    const ratios = perRound('rps');
    return {
      server,
      rounds: ok.length,
      failedRuns: failed.length,
      rps: median(ok.map((r) => r.rps)),
      ratio: median(ratios),
      ratioMin: Math.min(...ratios),
      ratioMax: Math.max(...ratios),
      p50: median(ok.map((r) => r.p50_ms)),
      p99: median(ok.map((r) => r.p99_ms)),
      p99Ratio: median(perRound('p99_ms')),
      rssMiB: median(ok.map((r) => r.rss_kb)) / 1024,
      cpuPct: median(ok.map((r) => r.srv_cpu_pct)),
      errors: ok.reduce((sum, r) => sum + r.errors + r.non2xx, 0),
      foreignPct: Math.max(...ok.map((r) => r.foreign_pct)),
    };
  });
}

/** Which goals (issues #8, #14, #19) hold for Portico in this run, and where Node's own ceiling stands. */
export function goals(scenario, rows) {
  const mine = rows.find((r) => r.server.startsWith('portico'));
  if (scenario.optional) return [];
  if (!mine || mine.unavailable) return [`${scenario.title}: ${mine?.unavailable ?? 'Portico did not run'}`];
  const out = [];
  if (scenario.goal.ratio !== undefined) {
    const hold = mine.ratio >= scenario.goal.ratio;
    out.push(`${scenario.title}: ${fmt(mine.ratio, 2)} of ${scenario.reference} (goal ≥ ${fmt(scenario.goal.ratio, 2)}): ${hold ? 'holds' : 'missed'}`);
    // h2load reports no percentiles: no p99 goal to judge there.
    if ((scenario.reference === 'nginx' || scenario.reference.startsWith('nginx')) && Number.isFinite(mine.p99)) {
      out.push(`${scenario.title}: p99 ${fmt(mine.p99, 2)} ms = ${fmt(mine.p99Ratio, 2)}× ${scenario.reference}'s (goal ≤ 2×): ${mine.p99Ratio <= 2 ? 'holds' : 'missed'}`);
    }
    // A bare Node server doing the same job with nothing else (scenario.ceiling): the goal is out
    // of a Node server's reach when that server itself stays under it.
    const ceiling = scenario.ceiling ? rows.find((r) => r.server === scenario.ceiling && !r.unavailable) : undefined;
    if (ceiling && Number.isFinite(ceiling.ratio)) {
      const p99 = Number.isFinite(ceiling.p99Ratio) ? `, p99 ${fmt(ceiling.p99Ratio, 2)}× ${scenario.reference}'s` : '';
      out.push(`${scenario.title}: Node's own ceiling (${ceiling.server}) is ${fmt(ceiling.ratio, 2)} of ${scenario.reference}${ceiling.ratio < scenario.goal.ratio ? ', under the goal' : ''}${p99}; Portico is ${fmt(mine.rps / ceiling.rps, 2)} of it`);
    }
  }
  if (scenario.goal.kibPerConnection !== undefined) {
    const hold = mine.kibPerConnection <= scenario.goal.kibPerConnection;
    out.push(`${scenario.title}: ${fmt(mine.kibPerConnection, 2)} KiB per connection (goal ≤ ${scenario.goal.kibPerConnection} KiB): ${hold ? 'holds' : 'missed'}`);
    const ceiling = scenario.ceiling ? rows.find((r) => r.server === scenario.ceiling && !r.unavailable) : undefined;
    if (ceiling && Number.isFinite(ceiling.kibPerConnection)) {
      out.push(`${scenario.title}: Node's own floor (${ceiling.server}) is ${fmt(ceiling.kibPerConnection, 2)} KiB per connection${ceiling.kibPerConnection > scenario.goal.kibPerConnection ? ', above the goal' : ''}`);
    }
  }
  return out;
}

/** The markdown table of one scenario. */
export function table(scenario, rows) {
  const lines = [];
  if (scenario.kind === 'idle') {
    lines.push(`| server | connections ok / failed | KiB per connection | RSS before MiB | RSS with connections MiB |`, '|---|---:|---:|---:|---:|');
    for (const r of rows) {
      if (r.unavailable) lines.push(`| ${r.server} | cannot run: ${r.unavailable} | | | |`);
      else lines.push(`| ${r.server} | ${fmt(r.connections)} / ${fmt(r.failedConnections)} | ${fmt(r.kibPerConnection, 2)} | ${fmt(r.rssBaseMiB, 1)} | ${fmt(r.rssMiB, 1)} |`);
    }
    return lines.join('\n');
  }
  lines.push(`| server | req/s | ratio to ${scenario.reference} (min–max) | p50 ms | p99 ms | p99 ÷ ${scenario.reference}'s | RSS MiB | server CPU % | errors |`, '|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) {
    if (r.unavailable) {
      lines.push(`| ${r.server} | cannot run: ${r.unavailable} | | | | | | | |`);
      continue;
    }
    const range = r.rounds > 1 ? ` (${fmt(r.ratioMin, 2)}–${fmt(r.ratioMax, 2)})` : '';
    lines.push(`| ${r.server} | ${fmt(r.rps)} | ${fmt(r.ratio, 2)}${range} | ${fmt(r.p50, 2)} | ${fmt(r.p99, 2)} | ${fmt(r.p99Ratio, 2)} | ${fmt(r.rssMiB, 1)} | ${fmt(r.cpuPct)} | ${r.errors} |`);
  }
  return lines.join('\n');
}

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/**
 * The chart: one group of horizontal bars per scenario (ratio to its reference, 1.00 marked, the
 * goal marked), Portico's bar first and coloured; idle shows KiB per connection instead.
 */
export function chart(result) {
  const width = 900;
  const left = 230;
  const barH = 14;
  const gap = 4;
  const plotW = width - left - 60;
  const groups = result.scenarios.filter((s) => s.rows.some((r) => !r.unavailable));
  const parts = [];
  let y = 78;
  const maxRatio = Math.max(1.5, ...groups.filter((g) => g.kind !== 'idle').flatMap((g) => g.rows.map((r) => r.ratio ?? 0).filter(Number.isFinite)));
  const xOf = (ratio) => left + (Math.min(ratio, maxRatio) / maxRatio) * plotW;
  for (const group of groups) {
    const rows = group.rows;
    const idle = group.kind === 'idle';
    const maxKib = idle ? Math.max(1, ...rows.map((r) => r.kibPerConnection ?? 0).filter(Number.isFinite)) : 1;
    parts.push(`<text x="10" y="${y + 11}" font-weight="bold">${esc(group.title)}${idle ? ' (KiB per connection, lower is better)' : ` (req/s ÷ ${esc(group.reference)}'s, same round)`}</text>`);
    y += 18;
    const top = y;
    for (const r of rows) {
      const portico = r.server.startsWith('portico');
      parts.push(`<text x="${left - 8}" y="${y + barH - 3}" text-anchor="end"${portico ? ' font-weight="bold"' : ''}>${esc(r.server)}</text>`);
      if (r.unavailable) {
        parts.push(`<text x="${left + 4}" y="${y + barH - 3}" fill="#888">cannot run: ${esc(r.unavailable.slice(0, 80))}</text>`);
      } else {
        const value = idle ? r.kibPerConnection : r.ratio;
        const w = idle ? (value / maxKib) * (plotW - 80) : xOf(value) - left;
        parts.push(`<rect x="${left}" y="${y}" width="${Math.max(1, w).toFixed(1)}" height="${barH}" fill="${portico ? '#d9480f' : '#868e96'}"/>`);
        parts.push(`<text x="${(left + Math.max(1, w) + 4).toFixed(1)}" y="${y + barH - 3}">${idle ? `${fmt(value, 2)} KiB` : fmt(value, 2)}</text>`);
      }
      y += barH + gap;
    }
    if (idle && group.goal?.kibPerConnection !== undefined) {
      const gx = left + (group.goal.kibPerConnection / maxKib) * (plotW - 80);
      parts.push(`<line x1="${gx.toFixed(1)}" y1="${top - 2}" x2="${gx.toFixed(1)}" y2="${y}" stroke="#2b8a3e" stroke-width="2"/><text x="${(gx + 3).toFixed(1)}" y="${top - 4}" fill="#2b8a3e" font-size="10">goal ${group.goal.kibPerConnection} KiB</text>`);
    }
    if (!idle) {
      parts.push(`<line x1="${xOf(1).toFixed(1)}" y1="${top - 2}" x2="${xOf(1).toFixed(1)}" y2="${y}" stroke="#000" stroke-dasharray="3,2"/>`);
      if (group.goal?.ratio !== undefined) parts.push(`<line x1="${xOf(group.goal.ratio).toFixed(1)}" y1="${top - 2}" x2="${xOf(group.goal.ratio).toFixed(1)}" y2="${y}" stroke="#2b8a3e" stroke-width="2"/><text x="${(xOf(group.goal.ratio) + 3).toFixed(1)}" y="${top - 4}" fill="#2b8a3e" font-size="10">goal ${fmt(group.goal.ratio, 2)}</text>`);
    }
    y += 14;
  }
  const m = result.machine;
  const header = [
    `<text x="10" y="22" font-size="16" font-weight="bold">Portico benchmark ${esc(result.date)} (${esc(result.mode)})</text>`,
    `<text x="10" y="42">${esc(`${m.cpu}, ${m.cores} cores; Node ${m.node}; nginx ${m.nginx}; Caddy ${m.caddy}; HAProxy ${m.haproxy}`)}</text>`,
    `<text x="10" y="60" fill="#555">${esc(`server on CPU ${result.settings.serverCpus}, wrk on CPU ${result.settings.wrkCpus}, ${result.settings.connections} keep-alive connections, ${result.settings.rounds} interleaved round(s) of ${result.settings.duration} s; bars: median of per-round ratios`)}</text>`,
  ];
  const height = y + 10;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="#fff"/>
${header.join('\n')}
${parts.join('\n')}
</svg>
`;
}
