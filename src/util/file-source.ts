import { readPublicFile, readSecretFile, type SharedGroup } from './secret-file.js';

/**
 * Where the gateway's files come from when it loads its state. On disk, under
 * the rules of secret-file.ts. With `workers` > 1 a reload is read and
 * checked once, in the primary (RecordingFiles), and the very bytes it
 * checked are handed to every worker (snapshotFiles), so that all workers
 * take the same state even when a file changes while they reload, and a
 * file the primary refused never reaches a worker. Key material only
 * crosses the IPC channel to the primary's own children.
 */
export interface FileSource {
  /**
   * A file that holds a secret (private key, password, credential store):
   * refused when group or others may read it, except read by `shared` group.
   */
  secret(path: string, what: string, shared?: SharedGroup): Promise<Buffer>;
  /** A file that is not secret (certificate, CA, CRL). */
  public(path: string, what: string): Promise<Buffer>;
}

export const DISK_FILES: FileSource = { secret: readSecretFile, public: readPublicFile };

/** Files as read once, by path: what crosses to the workers. */
export type FileSnapshot = Record<string, { secret: boolean; base64: string }>;

/** Reads from disk and remembers every file it read. */
export class RecordingFiles implements FileSource {
  private readonly files: FileSnapshot = {};

  async secret(path: string, what: string, shared?: SharedGroup): Promise<Buffer> {
    return this.keep(path, true, await readSecretFile(path, what, shared));
  }

  async public(path: string, what: string): Promise<Buffer> {
    return this.keep(path, false, await readPublicFile(path, what));
  }

  snapshot(): FileSnapshot {
    return { ...this.files };
  }

  private keep(path: string, secret: boolean, data: Buffer): Buffer {
    this.files[path] = { secret, base64: data.toString('base64') };
    return data;
  }
}

/** Answers from a snapshot the primary took; asking for a file it did not read is a bug, not a missing file. */
export function snapshotFiles(files: FileSnapshot): FileSource {
  const get = (path: string, what: string): Promise<Buffer> => {
    const f = files[path];
    if (f === undefined) return Promise.reject(new Error(`${what} ${path} was not part of the reload the primary checked`));
    return Promise.resolve(Buffer.from(f.base64, 'base64'));
  };
  return { secret: get, public: get };
}
