/**
 * Reads a gateway's metrics listener over real HTTP and looks samples up by
 * name and labels, so tests assert exact values rather than grep the text.
 */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Scrape {
  samples: Sample[];
  /** The value of the one sample with `name` whose labels include `labels`; throws if there is none or several. */
  value(name: string, labels?: Record<string, string>): number;
  /** Sum over every sample with `name` whose labels include `labels` (0 when none). */
  sum(name: string, labels?: Record<string, string>): number;
}

export async function get(address: { host: string; port: number } | undefined, path: string, method = 'GET'): Promise<{ status: number; body: string; contentType: string }> {
  if (!address) throw new Error('the gateway has no metrics listener');
  const res = await fetch(`http://${address.host}:${address.port}${path}`, { method });
  return { status: res.status, body: await res.text(), contentType: res.headers.get('content-type') ?? '' };
}

export async function scrape(address: { host: string; port: number } | undefined): Promise<Scrape> {
  const r = await get(address, '/metrics');
  if (r.status !== 200) throw new Error(`/metrics answered ${r.status}: ${r.body}`);
  return parseExposition(r.body);
}

/** Parses the Prometheus text exposition format (the subset prom-client writes). */
export function parseExposition(text: string): Scrape {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unparsable exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1] as string] = (l[2] as string).replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    samples.push({ name: m[1] as string, labels, value: Number(m[3]) });
  }
  const matching = (name: string, labels: Record<string, string>): Sample[] =>
    samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  return {
    samples,
    value(name, labels = {}) {
      const hits = matching(name, labels);
      if (hits.length !== 1) throw new Error(`${hits.length} samples of ${name} ${JSON.stringify(labels)}; have:\n${samples.filter((s) => s.name === name).map((s) => JSON.stringify(s)).join('\n')}`);
      return (hits[0] as Sample).value;
    },
    sum: (name, labels = {}) => matching(name, labels).reduce((a, s) => a + s.value, 0),
  };
}
