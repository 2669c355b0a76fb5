import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { HostPort } from '../config/endpoint.js';
import { formatHostPort } from '../config/endpoint.js';
import { VmgateError, messageOf } from '../errors.js';
import type { Logger } from '../log/logger.js';

export interface MetricsServerOptions {
  listen: HostPort;
  /**
   * What /metrics serves: a prom-client Registry, or anything with the same
   * two members (for example an adapter over an AggregatorRegistry).
   */
  registry: { metrics(): Promise<string>; readonly contentType: string };
  /** Undefined when the gateway is ready for new channels, else a one-line reason (/readyz). */
  notReady: () => string | undefined;
  log: Logger;
}

/**
 * The plain-HTTP listener for Prometheus and for health probes:
 * /metrics, /healthz (the process answers), /readyz (the gateway takes new
 * channels). Anything else is 404. It carries no migration data and reads
 * no request body.
 */
export class MetricsServer {
  private constructor(private readonly server: Server) {}

  static async start(o: MetricsServerOptions): Promise<MetricsServer> {
    const server = createServer((req, res) => void handle(o, req, res));
    // Scrapes and probes are small and quick; a client that dribbles its request is cut.
    server.headersTimeout = 10_000;
    server.requestTimeout = 10_000;
    server.maxConnections = 64;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e) =>
        reject(new VmgateError('listen-failed', `cannot listen on metrics.listen ${formatHostPort(o.listen)}: ${messageOf(e)}; pick a free port or remove the metrics key`, {
          cause: e,
          detail: { key: 'metrics.listen', address: formatHostPort(o.listen) },
        })),
      );
      server.listen(o.listen.port, o.listen.host, () => resolve());
    });
    return new MetricsServer(server);
  }

  address(): HostPort {
    const a = this.server.address();
    if (a === null || typeof a === 'string') throw new VmgateError('internal', 'metrics server is not listening on TCP');
    return { host: a.address, port: a.port };
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      // A scraper's keep-alive connection would otherwise hold the close open.
      this.server.closeAllConnections();
    });
  }
}

async function handle(o: MetricsServerOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = new URL(req.url ?? '/', 'http://localhost').pathname;
  if (path !== '/metrics' && path !== '/healthz' && path !== '/readyz') {
    reply(res, 404, 'not found: this listener serves /metrics, /healthz and /readyz\n');
    return;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD');
    reply(res, 405, `method ${req.method ?? '?'} not allowed; use GET\n`);
    return;
  }
  if (path === '/healthz') {
    reply(res, 200, 'ok\n');
    return;
  }
  if (path === '/readyz') {
    const reason = o.notReady();
    reply(res, reason === undefined ? 200 : 503, `${reason ?? 'ready'}\n`);
    return;
  }
  try {
    reply(res, 200, await o.registry.metrics(), o.registry.contentType);
  } catch (e: unknown) {
    o.log.warn({ event: 'metrics-failed' }, `collecting metrics for a scrape failed: ${messageOf(e)}`);
    reply(res, 500, 'collecting metrics failed; see the gateway log\n');
  }
}

function reply(res: ServerResponse, status: number, body: string, contentType = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}
