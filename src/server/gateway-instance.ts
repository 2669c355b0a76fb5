import { randomBytes } from 'node:crypto';

/**
 * This gateway's instance: a random id made once per start, which WELCOME
 * (protocol version 2) tells every client. A source gateway whose lost
 * channel meets another instance knows the destination restarted and its
 * side of the channel is gone (`peer-restarted`), rather than waiting for a
 * link to come back. Workers take their primary's through the environment,
 * so a gateway is one instance however many processes carry it.
 */
export const INSTANCE_ENV = 'VMGATE_INSTANCE';

let instance: string | undefined;

export function gatewayInstance(): string {
  if (instance === undefined) {
    const inherited = process.env[INSTANCE_ENV];
    instance = inherited !== undefined && /^[0-9a-f]{32}$/.test(inherited) ? inherited : randomBytes(16).toString('hex');
  }
  return instance;
}
