/**
 * File names on disk. A host directory is exactly QEMU's `tls-creds-x509`
 * layout, so one directory serves vmgate, QEMU's native TLS and libvirt.
 */
import { join } from 'node:path';

export const HOST_FILES = {
  caCert: 'ca-cert.pem',
  crl: 'ca-crl.pem',
  serverCert: 'server-cert.pem',
  serverKey: 'server-key.pem',
  clientCert: 'client-cert.pem',
  clientKey: 'client-key.pem',
} as const;

const CA_FILES = {
  cert: 'ca-cert.pem',
  key: 'ca-key.pem',
  crl: 'ca-crl.pem',
  index: 'index.json',
  /** A copy of every certificate the CA signed, named `<serial>.pem`. */
  issuedDir: 'issued',
} as const;

export interface CaPaths { dir: string; cert: string; key: string; crl: string; index: string; issuedDir: string }

export function caPaths(dir: string): CaPaths {
  return {
    dir,
    cert: join(dir, CA_FILES.cert),
    key: join(dir, CA_FILES.key),
    crl: join(dir, CA_FILES.crl),
    index: join(dir, CA_FILES.index),
    issuedDir: join(dir, CA_FILES.issuedDir),
  };
}

export interface HostPaths { dir: string; caCert: string; crl: string; serverCert: string; serverKey: string; clientCert: string; clientKey: string }

export function hostPaths(dir: string): HostPaths {
  return {
    dir,
    caCert: join(dir, HOST_FILES.caCert),
    crl: join(dir, HOST_FILES.crl),
    serverCert: join(dir, HOST_FILES.serverCert),
    serverKey: join(dir, HOST_FILES.serverKey),
    clientCert: join(dir, HOST_FILES.clientCert),
    clientKey: join(dir, HOST_FILES.clientKey),
  };
}

export const SECRET_MODE = 0o600;
export const PUBLIC_MODE = 0o644;
export const DIR_MODE = 0o700;
