import { CredentialStore } from '../auth/credential-store.js';
import type { Config } from '../config/config.js';
import { formatHostPort } from '../config/endpoint.js';
import { VmgateError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { expiringSoon, loadIdentity, type Identity } from '../tls/identity.js';
import { readSecretFile } from '../util/secret-file.js';
import { ChannelTable } from './channel-table.js';
import { InboundServer } from './inbound-server.js';
import { Route } from './route.js';

const EXPIRY_WARNING_DAYS = 30;

/**
 * One gateway daemon: the server role (if configured) and every route. Loads
 * and checks every file before opening any listener, so a bad file stops the
 * start with a clear error and never leaves a half-started gateway.
 */
export class Gateway {
  readonly channels = new ChannelTable();
  private identity: Identity;
  private credentials: CredentialStore;
  private server: InboundServer | undefined;
  private readonly routes: Route[] = [];

  private constructor(
    readonly config: Config,
    private readonly log: Logger,
    identity: Identity,
    credentials: CredentialStore,
    private readonly passwords: Map<string, string>,
  ) {
    this.identity = identity;
    this.credentials = credentials;
  }

  static async start(config: Config, log: Logger): Promise<Gateway> {
    const identity = await loadIdentity(config.tls);
    const credentials = config.server ? await CredentialStore.load(config.server.credentials) : CredentialStore.empty();
    const passwords = new Map<string, string>();
    for (const r of config.routes) passwords.set(r.name, await readPassword(r.passwordFile, r.name));
    const gw = new Gateway(config, log, identity, credentials, passwords);
    gw.warnExpiry();
    try {
      await gw.open();
    } catch (e: unknown) {
      await gw.stop();
      throw e;
    }
    return gw;
  }

  /** The TLS listener's bound address (useful with port 0). */
  serverAddress(): { host: string; port: number } | undefined {
    return this.server?.address();
  }

  routeAddress(name: string): string | undefined {
    return this.routes.find((r) => r.name === name)?.address();
  }

  /**
   * Stops accepting new channels, lets channels in flight finish for up to
   * `graceMs`, then ends the rest at once with cause `shutdown`.
   */
  async stop(graceMs = 0): Promise<void> {
    const closing = [this.server?.close(), ...this.routes.map((r) => r.close())];
    if (graceMs > 0 && this.channels.size > 0) {
      this.log.info({ event: 'draining', channels: this.channels.size, graceMs }, `waiting up to ${graceMs} ms for ${this.channels.size} channel(s) to finish`);
      await this.channels.whenEmpty(graceMs);
    }
    const n = this.channels.abortAll('shutdown', 'the gateway is shutting down');
    if (n > 0) this.log.warn({ event: 'shutdown', channels: n }, `ended ${n} channel(s) because the gateway is shutting down`);
    await Promise.all(closing);
  }

  private async open(): Promise<void> {
    const common = { identity: () => this.identity, channels: this.channels, closeGraceMs: this.config.channel.closeGraceMs };
    if (this.config.server) {
      this.server = new InboundServer({ ...common, config: this.config.server, credentials: () => this.credentials, log: this.log.child({ role: 'server' }) });
      await this.server.listen();
    }
    for (const rc of this.config.routes) {
      const route = new Route({ ...common, config: rc, password: this.passwords.get(rc.name) ?? '', log: this.log.child({ role: 'route' }) });
      this.routes.push(route);
      await route.listen();
    }
    this.log.info(
      {
        event: 'ready',
        server: this.server ? formatHostPort(this.server.address()) : null,
        targets: this.config.server ? [...this.config.server.targets.keys()] : [],
        routes: this.routes.map((r) => ({ name: r.name, listen: r.address() })),
        identity: this.identity.server.cert.subject.replace(/\n/g, ', '),
        crl: this.config.tls.crl ?? null,
      },
      `vmgate ${this.config.name} ready`,
    );
  }

  private warnExpiry(): void {
    for (const w of expiringSoon(this.identity, EXPIRY_WARNING_DAYS)) {
      this.log.warn({ event: 'cert-expiring', file: w.file, daysLeft: w.daysLeft }, `certificate ${w.file} (${w.subject}) expires in ${w.daysLeft} day(s); renew it with certs/vmgate-pki renew`);
    }
  }
}

async function readPassword(file: string, route: string): Promise<string> {
  const text = (await readSecretFile(file, `password file of route ${route}`)).toString('utf8').replace(/\r?\n$/, '');
  if (text.length === 0) throw new VmgateError('config-invalid', `password file ${file} of route ${route} is empty`);
  return text;
}
