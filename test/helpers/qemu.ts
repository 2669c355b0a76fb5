// The QEMU launcher is product code now (`vmgate demo` uses it): src/qemu/qemu-vm.ts.
export * from '../../src/qemu/qemu-vm.js';
