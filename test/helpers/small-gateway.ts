import { rmSync } from 'node:fs';
import { cp, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSelfSignedHost } from '../../src/pki/index.js';
import { onProcessExit } from './netns.js';
import { writeGatewayConfig } from './gateway-process.js';

let template: Promise<string> | undefined;

/** One self-signed identity per test process (an RSA key takes seconds), copied into each gateway's directory. */
function identityTemplate(): Promise<string> {
  template ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), 'vmgate-small-tls-'));
    onProcessExit(() => rmSync(dir, { recursive: true, force: true }));
    await createSelfSignedHost({ outDir: join(dir, 'tls'), commonName: 'host-small', dns: ['host-small'], keyBits: 2048, allowWeakKeyForTests: true });
    return join(dir, 'tls');
  })();
  return template;
}

/**
 * The smallest gateway `vmgate run` accepts: a self-signed identity, no
 * server, no routes, a control socket. For tests of the daemon's own
 * behaviour (signals, control socket, systemd), not of migrations.
 */
export async function writeSmallGateway(dir: string, name = 'host-small'): Promise<{ config: string; control: string; tls: string }> {
  const tls = join(dir, 'tls');
  await cp(await identityTemplate(), tls, { recursive: true });
  const config = join(dir, 'gateway.yaml');
  const control = join(dir, 'control.sock');
  await writeGatewayConfig(config, { name, tls: { dir: tls }, control: { socket: control } });
  return { config, control, tls };
}
