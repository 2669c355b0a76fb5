/**
 * The one place that loads @peculiar/x509 (used for CRLs and for reading
 * certificates of any key type). It needs reflect-metadata before it loads and
 * a WebCrypto provider; Node's own webcrypto is the provider.
 */
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

/** The WebCrypto type @peculiar/x509 expects (the DOM lib is not loaded here). */
export type WebCrypto = NonNullable<Parameters<typeof x509.X509CrlGenerator.create>[1]>;
export type WebCryptoKey = x509.X509CrlCreateParams['signingKey'];

x509.cryptoProvider.set(webcrypto as unknown as WebCrypto);

export { x509, webcrypto };
