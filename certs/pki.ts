/**
 * vmgate-pki: the operator's scripts for the vmgate PKI (see certs/README.md).
 * Thin layer over src/pki: parses arguments, prints what was done and the next
 * step, and turns every error into one line `error [code]: message` with a
 * non-zero exit status. The only place in this tree that sets the exit status.
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { VmgateError, isVmgateError, messageOf } from '../src/errors.js';
import {
  createCa, generateCrl, inspectCertificate, issueCertificate, listIssued, parseCrlPem, publishCrl,
  renewCertificate, revokeCertificate, summarizeCrl, verifyHostDir, REVOCATION_REASONS, type CertificateSummary,
} from '../src/pki/index.js';
import { describeKeySpec } from '../src/pki/keys.js';
import { onStdoutEpipe } from '../src/util/stdout-epipe.js';

const EXIT_FAILED = 1;
const EXIT_USAGE = 2;

type Print = (line?: string) => void;

/** Shell-quotes a word for the "next:" lines so they can be pasted as they are. */
function q(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

function int(value: string): number {
  if (!/^[0-9]+$/.test(value)) throw new InvalidArgumentError('expected a whole number');
  return Number.parseInt(value, 10);
}

function list(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), ...value.split(',').map((s) => s.trim()).filter((s) => s.length > 0)];
}

function readPassphrase(file: string | undefined): string | undefined {
  if (file === undefined) return undefined;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e: unknown) {
    throw new VmgateError('config-unreadable', `cannot read passphrase file ${file}: ${messageOf(e)}`, { cause: e });
  }
  const pass = text.replace(/\r?\n$/, '');
  if (pass.length === 0) throw new VmgateError('pki-bad-input', `passphrase file ${file} is empty`);
  return pass;
}

function keyOptions(o: { keyType?: string; keyBits?: number }): { keyType?: string; keyBits?: number } {
  return { ...(o.keyType !== undefined ? { keyType: o.keyType } : {}), ...(o.keyBits !== undefined ? { keyBits: o.keyBits } : {}) };
}

const date = (d: Date | undefined): string => (d === undefined ? 'never' : d.toISOString().replace(/\.\d{3}Z$/, 'Z'));

function names(dns: readonly string[], ips: readonly string[]): string {
  const parts = [...dns.map((n) => `DNS:${n}`), ...ips.map((i) => `IP:${i}`)];
  return parts.length > 0 ? parts.join(', ') : 'no SANs';
}

function printCertificate(out: Print, s: CertificateSummary): void {
  out(`subject        ${s.subject}`);
  out(`issuer         ${s.issuer}${s.selfSigned ? ' (self-signed)' : ''}`);
  out(`serial         ${s.serial}`);
  out(`names          ${names(s.dns, s.ips)}`);
  out(`CA             ${s.isCa ? 'yes' : 'no'}`);
  out(`key usage      ${s.keyUsage.join(', ') || '-'}`);
  out(`ext key usage  ${s.extKeyUsage.join(', ') || '-'}`);
  out(`valid          ${date(s.notBefore)} .. ${date(s.notAfter)} (${s.daysLeft < 0 ? `expired ${-s.daysLeft} days ago` : `${s.daysLeft} days left`})`);
  out(`public key     ${s.publicKey}, signed ${s.signatureAlgorithm}`);
  out(`sha256         ${s.fingerprintSha256}`);
}

function buildProgram(out: Print): Command {
  const program = new Command('vmgate-pki')
    .description('Manage the vmgate PKI: a CA, host certificates in QEMU tls-creds-x509 layout, revocation (CRL), renewal.\nSee certs/README.md.')
    .exitOverride()
    .configureOutput({ outputError: () => undefined })
    .helpCommand(true);

  program.command('init-ca')
    .description('create a CA directory: ca-cert.pem, ca-key.pem (0600), an empty ca-crl.pem, index.json')
    .requiredOption('--dir <dir>', 'CA directory to create')
    .requiredOption('--cn <name>', 'CA common name, e.g. "vmgate CA prod"')
    .option('--days <n>', 'validity in days (default 3650)', int)
    .option('--key-type <type>', 'ec (ECDSA P-256, default), rsa or ed25519')
    .option('--key-bits <n>', 'RSA key size (default 3072; implies --key-type rsa)', int)
    .option('--passphrase-file <file>', 'encrypt ca-key.pem with the passphrase in this file')
    .option('--force', 'overwrite an existing CA (its issued certificates become unverifiable)')
    .action(async (o: { dir: string; cn: string; days?: number; keyType?: string; keyBits?: number; passphraseFile?: string; force?: boolean }) => {
      const passphrase = readPassphrase(o.passphraseFile);
      const r = await createCa({
        dir: o.dir, commonName: o.cn, ...keyOptions(o),
        ...(o.days !== undefined ? { days: o.days } : {}),
        ...(passphrase !== undefined ? { passphrase } : {}), ...(o.force === true ? { force: true } : {}),
      });
      out(`created CA "${o.cn}" in ${o.dir}`);
      out(`  certificate  ${r.certPath} (serial ${r.serial}, valid until ${date(r.notAfter)})`);
      out(`  key          ${r.keyPath} (${describeKeySpec(r.keySpec)}, mode 0600, ${r.encrypted ? 'encrypted' : 'NOT encrypted: keep this directory offline, or use --passphrase-file'})`);
      out(`  CRL          ${r.crlPath} (empty)`);
      out(`next: vmgate-pki issue --ca ${q(o.dir)} --out ./host-a --cn host-a --dns host-a.example --ip 192.0.2.10${r.encrypted ? ` --passphrase-file ${q(o.passphraseFile ?? '')}` : ''}`);
    });

  program.command('issue')
    .description('issue a certificate into a directory in QEMU tls-creds-x509 layout')
    .requiredOption('--ca <dir>', 'CA directory')
    .requiredOption('--out <dir>', 'output directory (created 0700 if missing)')
    .requiredOption('--cn <name>', 'common name, e.g. host-a')
    .option('--dns <names>', 'DNS names for the SAN, comma-separated (repeatable)', list)
    .option('--ip <addresses>', 'IP addresses for the SAN, comma-separated (repeatable)', list)
    .option('--client-only', 'a client certificate (client-cert.pem only, clientAuth) instead of a host one')
    .option('--days <n>', 'validity in days (default 365, never past the CA)', int)
    .option('--key-type <type>', 'ec (ECDSA P-256, default), rsa or ed25519')
    .option('--key-bits <n>', 'RSA key size (default 3072; implies --key-type rsa)', int)
    .option('--key-passphrase-file <file>', 'encrypt the new key with the passphrase in this file (vmgate: tls.keyPassphraseFile; QEMU: passwordid=)')
    .option('--passphrase-file <file>', 'passphrase of the CA key')
    .option('--force', 'overwrite existing certificate and key files')
    .action(async (o: { ca: string; out: string; cn: string; dns?: string[]; ip?: string[]; clientOnly?: boolean; days?: number; keyType?: string; keyBits?: number; keyPassphraseFile?: string; passphraseFile?: string; force?: boolean }) => {
      const caPassphrase = readPassphrase(o.passphraseFile);
      const keyPassphrase = readPassphrase(o.keyPassphraseFile);
      const r = await issueCertificate({
        caDir: o.ca, outDir: o.out, commonName: o.cn, kind: o.clientOnly === true ? 'client' : 'host', ...keyOptions(o),
        ...(o.dns !== undefined ? { dns: o.dns } : {}), ...(o.ip !== undefined ? { ips: o.ip } : {}),
        ...(o.days !== undefined ? { days: o.days } : {}), ...(keyPassphrase !== undefined ? { keyPassphrase } : {}),
        ...(caPassphrase !== undefined ? { caPassphrase } : {}), ...(o.force === true ? { force: true } : {}),
      });
      out(`issued ${r.kind} certificate CN=${r.commonName} serial ${r.serial} (${names(r.dns, r.ips)}; valid until ${date(r.notAfter)})`);
      out(`  wrote ${r.kind === 'host' ? 'server-cert.pem, server-key.pem, client-cert.pem, client-key.pem' : 'client-cert.pem, client-key.pem'}, ca-cert.pem${r.crlPath !== undefined ? ', ca-crl.pem' : ''} in ${r.outDir} (${describeKeySpec(r.keySpec)} keys, 0600${r.keyEncrypted ? ', encrypted' : ''})`);
      const name = r.dns[0] ?? r.ips[0];
      out(`next: vmgate-pki verify ${q(r.outDir)}${name !== undefined ? ` --name ${q(name)}` : ''}, then copy the directory to the host (keep the keys 0600)`);
    });

  program.command('list')
    .description('list the certificates a CA has issued')
    .requiredOption('--ca <dir>', 'CA directory')
    .option('--json', 'print JSON')
    .action((o: { ca: string; json?: boolean }) => {
      const records = listIssued(o.ca);
      if (o.json === true) { out(JSON.stringify(records, null, 2)); return; }
      const now = new Date();
      for (const r of records) {
        const status = r.revoked ? `revoked${r.reason !== undefined ? `:${r.reason}` : ''}` : r.notAfter < now ? 'expired' : 'valid';
        out(`${r.serial}  ${status.padEnd(20)} ${date(r.notAfter)}  ${r.kind.padEnd(6)} CN=${r.commonName}  ${names(r.dns, r.ips)}`);
      }
      const revoked = records.filter((r) => r.revoked).length;
      out(`${records.length} certificate(s) issued by ${o.ca}, ${revoked} revoked`);
      out(`next: vmgate-pki revoke --ca ${q(o.ca)} --serial SERIAL --reason keyCompromise   (to withdraw one)`);
    });

  program.command('inspect')
    .description('show a certificate or a CRL (PEM)')
    .argument('<file>', 'a PEM certificate (e.g. server-cert.pem) or CRL (ca-crl.pem)')
    .option('--json', 'print JSON')
    .action((file: string, o: { json?: boolean }) => {
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (e: unknown) {
        throw new VmgateError('pki-unreadable', `cannot read ${file}: ${messageOf(e)}`, { cause: e });
      }
      if (text.includes('-----BEGIN X509 CRL-----')) {
        const s = summarizeCrl(parseCrlPem(text, file));
        if (o.json === true) { out(JSON.stringify(s, null, 2)); return; }
        out(`CRL issuer     ${s.issuer}`);
        out(`CRL number     ${s.crlNumber ?? '-'}`);
        out(`updated        ${date(s.thisUpdate)}, next update ${date(s.nextUpdate)}`);
        out(`revoked        ${s.revoked.length}`);
        for (const r of s.revoked) out(`  ${r.serial}  ${date(r.date)}  ${r.reason ?? ''}`);
        return;
      }
      const s = inspectCertificate(text);
      if (o.json === true) { out(JSON.stringify(s, null, 2)); return; }
      printCertificate(out, s);
    });

  program.command('verify')
    .description('check a host directory: chain, key, names, usages, expiry, revocation against its ca-crl.pem')
    .argument('<dir>', 'host directory (QEMU tls-creds-x509 layout)')
    .option('--name <name>', 'a DNS name or IP address peers expect the certificate to carry')
    .option('--json', 'print the report as JSON')
    .action(async (dir: string, o: { name?: string; json?: boolean }) => {
      const report = await verifyHostDir({ dir, ...(o.name !== undefined ? { expectName: o.name } : {}) });
      if (o.json === true) out(JSON.stringify(report, null, 2));
      else for (const f of report.findings) out(`${(f.ok ? 'ok' : f.level === 'error' ? 'FAIL' : 'warn').padEnd(5)} ${f.check.padEnd(11)} ${f.message}`);
      if (!report.ok) {
        throw new VmgateError('pki-verify-failed', `${dir}: ${report.errors} problem(s): ${report.findings.filter((f) => f.level === 'error').map((f) => f.check).join(', ')}`);
      }
      out(`${dir}: ok (${report.findings.length} checks, ${report.warnings} warning(s))`);
      out(`next: point vmgate (tls.dir) or QEMU (-object tls-creds-x509,dir=${q(dir)},...) at this directory`);
    });

  program.command('revoke')
    .description("revoke a certificate and re-sign the CA's ca-crl.pem")
    .requiredOption('--ca <dir>', 'CA directory')
    .option('--serial <serial>', 'serial number (hex, as list / inspect print it)')
    .option('--cert <file>', 'the certificate file to revoke')
    .option('--reason <reason>', `one of ${REVOCATION_REASONS.join(', ')}`)
    .option('--crl-days <n>', 'lifetime of the new CRL in days (default 30)', int)
    .option('--passphrase-file <file>', 'passphrase of the CA key')
    .action(async (o: { ca: string; serial?: string; cert?: string; reason?: string; crlDays?: number; passphraseFile?: string }) => {
      const caPassphrase = readPassphrase(o.passphraseFile);
      const r = await revokeCertificate({
        caDir: o.ca,
        ...(o.serial !== undefined ? { serial: o.serial } : {}), ...(o.cert !== undefined ? { certPath: o.cert } : {}),
        ...(o.reason !== undefined ? { reason: o.reason } : {}), ...(o.crlDays !== undefined ? { days: o.crlDays } : {}),
        ...(caPassphrase !== undefined ? { caPassphrase } : {}),
      });
      out(`${r.alreadyRevoked ? 'already revoked' : 'revoked'}: serial ${r.serial} (CN=${r.commonName})`);
      out(`  CRL ${r.crlPath} re-signed: CRL number ${r.crlNumber}, next update ${date(r.nextUpdate)}`);
      out(`next: vmgate-pki publish-crl --ca ${q(o.ca)} --to HOST_DIR   (for every host directory; peers refuse the certificate once they load the new CRL)`);
    });

  program.command('publish-crl')
    .description("copy the CA's current ca-crl.pem into host directories")
    .requiredOption('--ca <dir>', 'CA directory')
    .requiredOption('--to <dir>', 'host directory (repeatable, or comma-separated)', list)
    .action(async (o: { ca: string; to: string[] }) => {
      const r = await publishCrl({ caDir: o.ca, to: o.to });
      out(`published ${r.crlPath} (next update ${date(r.nextUpdate)}) to:`);
      for (const p of r.published) out(`  ${p}`);
      out(`next: copy those directories to their hosts; run vmgate-pki gen-crl --ca ${q(o.ca)} and publish again before ${date(r.nextUpdate)}`);
    });

  program.command('gen-crl')
    .description("re-sign the CA's ca-crl.pem (do this before its next update)")
    .requiredOption('--ca <dir>', 'CA directory')
    .option('--days <n>', 'lifetime of the CRL in days (default 30)', int)
    .option('--passphrase-file <file>', 'passphrase of the CA key')
    .action(async (o: { ca: string; days?: number; passphraseFile?: string }) => {
      const caPassphrase = readPassphrase(o.passphraseFile);
      const r = await generateCrl({ caDir: o.ca, ...(o.days !== undefined ? { days: o.days } : {}), ...(caPassphrase !== undefined ? { caPassphrase } : {}) });
      out(`signed ${r.crlPath}: CRL number ${r.crlNumber}, ${r.revokedCount} revoked, next update ${date(r.nextUpdate)}`);
      out(`next: vmgate-pki publish-crl --ca ${q(o.ca)} --to HOST_DIR`);
    });

  program.command('renew')
    .description('re-issue the certificate in a host directory: same names, new key and serial')
    .requiredOption('--ca <dir>', 'CA directory')
    .requiredOption('--dir <dir>', 'host directory to renew in place')
    .option('--days <n>', 'validity in days (default 365)', int)
    .option('--key-type <type>', 'ec, rsa or ed25519 (default: the type of the key being replaced)')
    .option('--key-bits <n>', 'RSA key size (implies --key-type rsa)', int)
    .option('--key-passphrase-file <file>', 'encrypt the new key with the passphrase in this file')
    .option('--passphrase-file <file>', 'passphrase of the CA key')
    .option('--force', 'renew even if the current certificate is from another CA')
    .action(async (o: { ca: string; dir: string; days?: number; keyType?: string; keyBits?: number; keyPassphraseFile?: string; passphraseFile?: string; force?: boolean }) => {
      const caPassphrase = readPassphrase(o.passphraseFile);
      const keyPassphrase = readPassphrase(o.keyPassphraseFile);
      const r = await renewCertificate({
        caDir: o.ca, outDir: o.dir, ...keyOptions(o), ...(keyPassphrase !== undefined ? { keyPassphrase } : {}),
        ...(o.days !== undefined ? { days: o.days } : {}),
        ...(caPassphrase !== undefined ? { caPassphrase } : {}), ...(o.force === true ? { force: true } : {}),
      });
      out(`renewed CN=${r.commonName} in ${r.outDir}: serial ${r.previousSerial} -> ${r.serial} (${names(r.dns, r.ips)}; valid until ${date(r.notAfter)})`);
      out(`next: deploy ${q(r.outDir)} and reload, then: vmgate-pki revoke --ca ${q(o.ca)} --serial ${r.previousSerial} --reason superseded`);
    });

  return program;
}

/** Runs the CLI; returns the exit status. */
async function runCli(argv: readonly string[], out: Print, err: Print): Promise<number> {
  const program = buildProgram(out);
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return 0;
  } catch (e: unknown) {
    if (e instanceof CommanderError) {
      if (e.exitCode === 0) return 0; // --help, help
      const sub = program.commands.find((c) => c.name() === argv[0]);
      err(`error [usage]: ${e.message.replace(/^error: /, '')} (see vmgate-pki ${sub !== undefined ? `${sub.name()} ` : ''}--help)`);
      return EXIT_USAGE;
    }
    if (isVmgateError(e)) {
      err(`error [${e.code}]: ${e.message}`);
      return EXIT_FAILED;
    }
    err(`error [internal]: ${messageOf(e)}`);
    return EXIT_FAILED;
  }
}

// `vmgate-pki list | head -1`: the reader has what it wanted; the command
// still finishes what it was asked to do (files it writes), exit status 0.
onStdoutEpipe(() => undefined);
const stdout: Print = (line = '') => { process.stdout.write(`${line}\n`); };
const stderr: Print = (line = '') => { process.stderr.write(`${line}\n`); };
process.exitCode = await runCli(process.argv.slice(2), stdout, stderr);
