/**
 * A self-signed host identity, as `openssl req -x509` would make it: for tests
 * that need a peer no CA vouches for. Its ca-cert.pem is the certificate
 * itself; it has no CRL.
 */
import { assertAbsent, ensureDir, writeFileAtomic } from './files.js';
import { buildCertificate } from './cert-builder.js';
import { checkKeySpec, encodePrivateKey, generateKey } from './keys.js';
import { hostPaths, PUBLIC_MODE, SECRET_MODE } from './layout.js';
import { checkCommonName, checkSans } from './names.js';
import { randomSerial } from './serial.js';
import { checkDays, period } from './validity.js';

export interface SelfSignedOptions {
  outDir: string;
  commonName: string;
  dns?: string[];
  ips?: string[];
  days?: number;
  keyType?: string;
  keyBits?: number;
  allowWeakKeyForTests?: boolean;
  force?: boolean;
}

export async function createSelfSignedHost(o: SelfSignedOptions): Promise<{ serial: string; certPath: string; keyPath: string; outDir: string }> {
  const commonName = checkCommonName(o.commonName);
  const { dns, ips } = checkSans(o.dns ?? [commonName], o.ips);
  const spec = checkKeySpec(o.keyType, o.keyBits, o.allowWeakKeyForTests);
  const validity = period(new Date(), checkDays(o.days, 365, 'certificate validity'), undefined, undefined);
  const h = hostPaths(o.outDir);
  assertAbsent([h.caCert, h.serverCert, h.serverKey, h.clientCert, h.clientKey], o.force);
  const keys = await generateKey(spec);
  const serial = randomSerial();
  const pem = buildCertificate({ serial, commonName, publicKey: keys.publicKey, selfKey: keys.privateKey, ...validity, profile: { kind: 'self-signed-host', dns, ips } });
  const keyPem = encodePrivateKey(keys.privateKey, undefined);
  await ensureDir(o.outDir);
  await writeFileAtomic(h.serverKey, keyPem, SECRET_MODE);
  await writeFileAtomic(h.clientKey, keyPem, SECRET_MODE);
  await writeFileAtomic(h.serverCert, pem, PUBLIC_MODE);
  await writeFileAtomic(h.clientCert, pem, PUBLIC_MODE);
  await writeFileAtomic(h.caCert, pem, PUBLIC_MODE);
  return { serial, certPath: h.serverCert, keyPath: h.serverKey, outDir: o.outDir };
}
