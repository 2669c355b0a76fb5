/**
 * The PKI library behind certs/vmgate-pki and the test fixtures: a CA, host
 * and client certificates in QEMU's tls-creds-x509 layout, revocation with a
 * CRL, renewal, inspection and checking of a host directory.
 */
export { createCa, type CreateCaOptions, type CreateCaResult } from './ca.js';
export { issueCertificate, type IssueOptions, type IssueResult, type CertKind } from './issue.js';
export { renewCertificate, type RenewOptions, type RenewResult } from './renew.js';
export {
  revokeCertificate, generateCrl, publishCrl, parseCrlPem, summarizeCrl,
  type RevokeOptions, type RevokeResult, type GenerateCrlResult, type PublishCrlResult, type CrlSummary,
} from './crl.js';
export { REVOCATION_REASONS, type RevocationReason } from './crl-writer.js';
export { inspectCertificate, type CertificateSummary } from './inspect.js';
export { listIssued } from './list.js';
export type { IssuedRecord } from './ca-index.js';
export { verifyHostDir, type VerifyHostDirOptions, type VerifyReport, type Finding, type FindingLevel, type FindingCheck } from './verify-dir.js';
export { createSelfSignedHost, type SelfSignedOptions } from './self-signed.js';
export type { ExtKeyUsage } from './cert-builder.js';
export { CA_FILES, HOST_FILES, caPaths, hostPaths } from './layout.js';
