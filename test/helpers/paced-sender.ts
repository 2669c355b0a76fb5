import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { Socket } from 'node:net';

/**
 * The source side of a transfer that runs beside the cases of a hostile
 * test: random chunks of `chunkBytes` every 20 ms, so it spans every case,
 * hashing what it sends; `stop` ends it and gives the digest to compare.
 */
export function pacedSender(s: Socket, chunkBytes: number): { stop: () => Promise<{ digest: string; bytes: number }> } {
  let stopping = false;
  const hash = createHash('sha256');
  let bytes = 0;
  const done = (async () => {
    while (!stopping) {
      const chunk = randomBytes(chunkBytes);
      hash.update(chunk);
      bytes += chunk.length;
      if (!s.write(chunk)) await once(s, 'drain');
      await new Promise((r) => setTimeout(r, 20));
    }
    s.end();
    return { digest: hash.digest('hex'), bytes };
  })();
  return {
    stop: () => {
      stopping = true;
      return done;
    },
  };
}
