/**
 * Buffer sizes of the data path, in one place because they trade memory per
 * channel for CPU per byte (measured with `npm run bench`, docs/performance.md).
 */

/**
 * Readable and writable high-water mark of every socket a channel uses. With
 * Node's default (16 KiB) each 64 KiB read written to TLS fills the writer
 * past its mark, so the reading socket pauses and resumes on every chunk.
 * 1 MiB lets a few reads queue while the previous write completes; it bounds
 * what a channel holds per direction (plus the kernel's socket buffers).
 */
export const RELAY_HIGH_WATER_MARK = 1 << 20;

/**
 * Sockets we create (the server's connection to its target) are read with
 * `onread` into buffers of this size, reused once written. One read takes
 * whatever the kernel holds, up to this, instead of Node's 64 KiB.
 */
export const READ_BUFFER_BYTES = 1 << 20;

/** Buffers handed to the writer before reading stops: bounds the reader at (this + 1) buffers. */
export const READ_BUFFERS_IN_FLIGHT = 2;
