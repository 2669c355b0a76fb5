import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sessionsTable } from '../../src/cli/sessions.js';
import type { ChannelView, SessionView } from '../../src/session/session-view.js';

function session(states: Array<ChannelView['state']>): SessionView {
  const channels = states.map((state, channel) => ({ channel, bytesIn: 0, bytesOut: 0, ageMs: 1000, state, pid: 1 }));
  return { session: 'a'.repeat(32), role: 'route', target: 'to-b', peer: 'host-b', ageMs: 1000, bytesIn: 0, bytesOut: 0, channels };
}

/** The STATE cell of the table's one session row. */
function stateCell(s: SessionView): string | undefined {
  const [header, row] = sessionsTable([s]).split('\n');
  const at = header?.indexOf('STATE') ?? -1;
  return row?.slice(at).split(/\s{2,}/)[0];
}

test('sessions-state: a session says how many of its channels are healing', () => {
  assert.equal(stateCell(session(['relaying', 'healing', 'healing'])), 'healing 2');
  assert.equal(stateCell(session(['relaying', 'closing'])), 'relaying');
  assert.equal(stateCell(session(['closing', 'closing'])), 'closing');
});
