// The QMP client is product code now (`vmgate demo` uses it): src/qemu/qmp.ts.
export * from '../../src/qemu/qmp.js';
