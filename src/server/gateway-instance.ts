import { randomBytes } from 'node:crypto';

/**
 * A gateway's instance: a random id drawn at each start, which WELCOME
 * (protocol version 2) tells every client. A source gateway whose lost
 * channel meets another instance knows the destination restarted and its
 * side of the channel is gone (`peer-restarted`), rather than waiting for a
 * link to come back. Workers take their primary's through the environment,
 * so a gateway is one instance however many processes carry it.
 */
export const INSTANCE_ENV = 'VMGATE_INSTANCE';

/** A new instance, for a gateway that is starting. */
export function newInstance(): string {
  return randomBytes(16).toString('hex');
}

/** The instance a worker process was given by its primary (INSTANCE_ENV), or undefined. */
export function inheritedInstance(): string | undefined {
  const inherited = process.env[INSTANCE_ENV];
  return inherited !== undefined && /^[0-9a-f]{32}$/.test(inherited) ? inherited : undefined;
}
