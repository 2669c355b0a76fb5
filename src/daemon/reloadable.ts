import { CredentialStore } from '../auth/credential-store.js';
import type { Config, TargetConfig } from '../config/config.js';
import { loadConfig, parseConfig, readConfigText } from '../config/load.js';
import { VmgateError } from '../errors.js';
import { loadIdentity, type Identity } from '../tls/identity.js';
import { DISK_FILES, RecordingFiles, snapshotFiles, type FileSnapshot, type FileSource } from '../util/file-source.js';

/** Everything a reload may replace, loaded and checked as one unit. */
export interface Reloadable {
  identity: Identity;
  credentials: CredentialStore;
  targets: Map<string, TargetConfig>;
  passwords: Map<string, string>;
}

/**
 * A reload as the primary of a gateway with workers read and checked it:
 * the config's text and the bytes of every file it names. Each worker builds
 * its state from exactly these (`loadFromChecked`), reading nothing itself.
 */
export interface CheckedReload {
  configText: string;
  files: FileSnapshot;
}

/**
 * Loads every file the config names. With `running`, the listeners of the
 * running config stay: a reload may change files and allow-lists, not ports.
 * `vmgate check-config` loads through here too, so it checks what `run` would.
 */
export async function loadReloadable(config: Config, running?: Config, source: FileSource = DISK_FILES): Promise<Reloadable> {
  const identity = await loadIdentity(config.tls, new Date(), source);
  const credentials = config.server ? await CredentialStore.load(config.server.credentials, source) : CredentialStore.empty();
  const passwords = new Map<string, string>();
  for (const r of (running ?? config).routes) {
    const fresh = config.routes.find((c) => c.name === r.name) ?? r;
    passwords.set(r.name, await readPassword(fresh.passwordFile, r.name, source));
  }
  return { identity, credentials, targets: config.server?.targets ?? new Map<string, TargetConfig>(), passwords };
}

/** A reload from the files on disk now (one process). */
export async function loadFromDisk(running: Config): Promise<Reloadable> {
  return loadReloadable(await loadConfig(running.file), running);
}

/** Reads and checks a reload once (the primary of a gateway with workers); throws what a worker would have. */
export async function checkReload(running: Config): Promise<CheckedReload> {
  const configText = await readConfigText(running.file);
  const files = new RecordingFiles();
  await loadReloadable(parseConfig(configText, running.file), running, files);
  return { configText, files: files.snapshot() };
}

/** A worker's reload: the state the primary checked, built from its bytes. */
export async function loadFromChecked(running: Config, checked: CheckedReload): Promise<Reloadable> {
  return loadReloadable(parseConfig(checked.configText, running.file), running, snapshotFiles(checked.files));
}

async function readPassword(file: string, route: string, source: FileSource): Promise<string> {
  const text = (await source.secret(file, `password file of route ${route}`)).toString('utf8').replace(/\r?\n$/, '');
  if (text.length === 0) throw new VmgateError('password-invalid', `password file ${file} of route ${route} is empty; write the route's SASL password into it`);
  return text;
}
