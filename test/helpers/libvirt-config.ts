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

/**
 * qemu.conf for one test "host". Tried one setting at a time on a machine
 * without systemd or AppArmor (libvirt 9.0, QEMU 7.2): only `stdio_handler`
 * is needed for a bare domain to start there; the rest are for our guests'
 * files and for machines that differ from that one (CI's Debian 12 with
 * AppArmor in the kernel, systemd owning the cgroup tree).
 */
export function qemuConf(o: QemuConfOptions = {}): string {
  return [
    '# Written by the vmgate libvirt tests (test/helpers/libvirt-config.ts).',
    '',
    '# QEMU runs as root: it reads the payload from, and pmemsave writes RAM',
    '# dumps into, 0700 root test folders. (The driver still needs user',
    '# libvirt-qemu, group libvirt-qemu and group kvm to exist before it reads',
    '# this file: .ci/install-deps creates them.)',
    'user = "root"',
    'group = "root"',
    '',
    '# Nothing for libvirt to chown to the QEMU user and back (no disks; QEMU is root).',
    'dynamic_ownership = 0',
    '',
    '# No per-guest AppArmor/SELinux profile: the apparmor driver needs',
    '# virt-aa-helper and profiles from libvirt-daemon-system, which is not installed.',
    'security_driver = "none"',
    '',
    '# No cgroups for QEMU: without systemd-machined, libvirt would create them',
    '# itself, which needs a cgroup tree delegated to it (under systemd it is not).',
    'cgroup_controllers = [ ]',
    '',
    '# No private /dev mount namespace per QEMU: QEMU stays in libvirtd\'s own',
    '# private mount namespace and sees exactly its bind mounts.',
    'namespaces = [ ]',
    '',
    '# No virtlogd (libvirt-daemon-system runs it; without it a domain fails to',
    '# start with "Failed to connect socket to \'/run/libvirt/virtlogd-sock\'").',
    '# QEMU\'s output goes straight to /var/log/libvirt/qemu/<domain>.log.',
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
