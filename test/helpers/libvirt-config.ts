/**
 * The libvirtd.conf and qemu.conf of the libvirt end-to-end tests: what it
 * takes to run two of Debian 12's libvirt 9.0 daemons side by side on one
 * machine without systemd, cgroup delegation, virtlogd, polkit, AppArmor or
 * the libvirt-daemon-system package. Each setting says why it is there.
 */

export interface LibvirtdConfOptions {
  /** Where this daemon's sockets go (libvirt-sock, libvirt-sock-ro, libvirt-admin-sock). */
  readonly socketDir: string;
  /** This daemon's host UUID. */
  readonly hostUuid: string;
  /** File for the daemon's warnings and errors. */
  readonly logFile: string;
}

/** libvirtd.conf for one test "host". */
export function libvirtdConf(o: LibvirtdConfOptions): string {
  return [
    '# Written by the vmgate libvirt tests (test/helpers/libvirt-config.ts).',
    '',
    '# Sockets outside the bind-mounted /run/libvirt, at a path every namespace',
    '# sees: the test runs virsh from its own namespace, and the other daemon',
    '# reaches this one for --p2p as qemu+unix:///system?socket=<this dir>/libvirt-sock.',
    `unix_sock_dir = ${quote(o.socketDir)}`,
    '',
    '# Both daemons run on one machine, so the UUID libvirt derives from DMI /',
    '# machine-id is the same for both, and the source refuses to migrate to',
    '# "the same host". Each daemon gets its own.',
    `host_uuid = ${quote(o.hostUuid)}`,
    '',
    '# No polkit here: root on a socket in a 0700 test directory is the only client.',
    'auth_unix_rw = "none"',
    'auth_unix_ro = "none"',
    '',
    '# Warnings and errors to a file the test shows when something fails',
    '# (no journald without systemd).',
    `log_outputs = ${quote(`3:file:${o.logFile}`)}`,
    '',
  ].join('\n');
}

export interface QemuConfOptions {
  /**
   * The ports libvirt picks a destination QEMU's incoming port from when
   * `--migrateuri` names none. Default: libvirt's own (49152-49215). A
   * route with a port range will set this to the route's range.
   */
  readonly migrationPorts?: { readonly min: number; readonly max: number };
}

/** qemu.conf for one test "host". */
export function qemuConf(o: QemuConfOptions = {}): string {
  return [
    '# Written by the vmgate libvirt tests (test/helpers/libvirt-config.ts).',
    '',
    '# QEMU runs as root: the test guests read a payload file from the test',
    '# directory and the tests need no accounts set up for them. (The driver',
    '# still needs user libvirt-qemu, group libvirt-qemu and group kvm to exist',
    '# before it reads this file: .ci/install-deps creates them.)',
    'user = "root"',
    'group = "root"',
    '',
    '# Do not chown disk/kernel/payload files to the QEMU user and back.',
    'dynamic_ownership = 0',
    '',
    '# No AppArmor/SELinux profile per guest (none is set up on the test machine).',
    'security_driver = "none"',
    '',
    '# No cgroup delegation without systemd: do not place QEMU in cgroups.',
    'cgroup_controllers = [ ]',
    '',
    '# No private /dev per QEMU: it needs mount namespaces and device nodes',
    '# libvirt cannot build in the already private mount namespace here.',
    'namespaces = [ ]',
    '',
    '# No virtlogd daemon: QEMU\'s stdout/stderr go straight to',
    '# /var/log/libvirt/qemu/<domain>.log.',
    'stdio_handler = "file"',
    '',
    // migration_address = "127.0.0.1" is refused by libvirt ("must not be the
    // address of the local machine"); the tests pass --listen-address instead.
    ...(o.migrationPorts === undefined
      ? []
      : [
          '# The destination QEMU\'s incoming port comes from this range: the same',
          '# range as the vmgate route on the source host and the target on this one.',
          `migration_port_min = ${o.migrationPorts.min}`,
          `migration_port_max = ${o.migrationPorts.max}`,
          '',
        ]),
  ].join('\n');
}

/** A libvirt config string literal. */
function quote(value: string): string {
  if (/["\\\n]/.test(value)) throw new Error(`libvirt config value must not contain quotes, backslashes or newlines: ${JSON.stringify(value)}`);
  return `"${value}"`;
}
