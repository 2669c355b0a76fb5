/** What the CA has issued, from its index. */
import { readIndexSync, toRecord, type IssuedRecord } from './ca-index.js';
import { caPaths } from './layout.js';

export function listIssued(caDir: string): IssuedRecord[] {
  return readIndexSync(caPaths(caDir).index).issued.map(toRecord);
}
