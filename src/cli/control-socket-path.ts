import { VmgateError } from '../errors.js';

/** Where `vmgate status|sessions|cancel|reload` find a gateway by default (deploy/vmgate.service's config sets it). */
export const DEFAULT_CONTROL_SOCKET = '/run/vmgate/control.sock';

/** The control socket of `--socket`, of the config `-c` names, or the default. */
export async function controlSocketPath(o: { socket?: string; config?: string }): Promise<string> {
  if (o.socket) return o.socket;
  if (o.config) {
    // Loaded only here: a client that names the socket never pays for the config stack.
    const { loadConfig } = await import('../config/load.js');
    const c = await loadConfig(o.config);
    if (!c.control) throw new VmgateError('control-unreachable', `${c.file} sets no control.socket, so that gateway has no control socket; add control.socket to it and restart it`);
    return c.control.socket;
  }
  return DEFAULT_CONTROL_SOCKET;
}
