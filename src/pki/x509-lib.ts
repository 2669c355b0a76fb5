/**
 * The one place that loads @peculiar/x509 (used for CRLs and for reading
 * certificates of any key type). It needs reflect-metadata before it loads and
 * a WebCrypto provider; Node's own webcrypto is the provider.
 */
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

// @peculiar/x509 types its provider and keys with the DOM's Crypto and
// CryptoKey, which this project does not load (lib: ES2022), so TypeScript
// sees those parameters as untyped and checks nothing there. Node's webcrypto
// is the provider the library expects at run time, and its CryptoKey the key.
x509.cryptoProvider.set(webcrypto);

export { x509, webcrypto };
