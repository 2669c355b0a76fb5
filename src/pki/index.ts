/**
 * The PKI library behind certs/vmgate-pki and the test fixtures: a CA, host
 * and client certificates in QEMU's tls-creds-x509 layout, revocation with a
 * CRL, renewal, inspection and checking of a host directory. Its users import
 * from here; it exports what they use (knip, in npm run lint, keeps it so).
 */
export { createCa } from './ca.js';
export { issueCertificate, type IssueOptions, type IssueResult } from './issue.js';
export { renewCertificate } from './renew.js';
export { revokeCertificate, generateCrl, publishCrl, parseCrlPem, summarizeCrl } from './crl.js';
export { REVOCATION_REASONS } from './crl-writer.js';
export { inspectCertificate, type CertificateSummary } from './inspect.js';
export { listIssued } from './list.js';
export { verifyHostDir, type VerifyReport } from './verify-dir.js';
export { createSelfSignedHost } from './self-signed.js';
