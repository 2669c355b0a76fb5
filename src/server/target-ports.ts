import type { TargetConfig } from '../config/config.js';
import { formatEndpoint, type LocalEndpoint } from '../config/endpoint.js';
import type { PortSpan } from '../control/messages.js';
import { VmgateError } from '../errors.js';

/**
 * Where an OPEN connects. A target that is a port range is reached at the
 * port the source route accepted the channel on (OPEN's `port`): libvirt
 * started the destination QEMU on that port and told the source QEMU to
 * migrate to it, so the same number on both hosts is the whole mapping. A
 * single-port target takes only OPENs without a port.
 */
export function targetEndpoint(target: TargetConfig, port: number | undefined): LocalEndpoint {
  const c = target.connect;
  if (c.kind !== 'tcp-range') {
    if (port === undefined) return c;
    throw mismatch(`the source route listens on a port range (port ${port}), but target ${target.name} is one endpoint, ${formatEndpoint(c)}`);
  }
  if (port === undefined) throw mismatch(`target ${target.name} is the port range ${formatEndpoint(c)}; the source route must listen on a port range too`);
  if (port < c.first || port > c.last) throw mismatch(`port ${port} is outside target ${target.name}'s range ${formatEndpoint(c)}`);
  return { kind: 'tcp', host: c.host, port };
}

/** PROBE: would every port of the source route's range (none: a single-port route) reach this target? */
export function checkPorts(target: TargetConfig, ports: PortSpan | undefined): void {
  const c = target.connect;
  if (ports === undefined || c.kind !== 'tcp-range') {
    targetEndpoint(target, ports?.first);
    return;
  }
  if (ports.first < c.first || ports.last > c.last) {
    throw mismatch(`the source route's ports ${ports.first}-${ports.last} do not fit inside target ${target.name}'s range ${formatEndpoint(c)}; make the two ranges match (qemu.conf migration_port_min/max on both hosts)`);
  }
}

function mismatch(why: string): VmgateError {
  return new VmgateError('target-port-mismatch', why);
}
