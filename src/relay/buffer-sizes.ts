/**
 * Buffer sizes of the data path, in one place because they trade memory per
 * channel for CPU per byte (measured with `npm run bench`, docs/performance.md).
 */
import type { ReadBufferSizes } from './reused-buffer-reader.js';

/**
 * Readable and writable high-water mark of every socket a channel uses. With
 * Node's default (16 KiB) each 64 KiB read written to TLS fills the writer
 * past its mark, so the reading socket pauses and resumes on every chunk.
 * 1 MiB lets a few reads queue while the previous write completes; it bounds
 * what a channel holds per direction (plus the kernel's socket buffers).
 */
export const RELAY_HIGH_WATER_MARK = 1 << 20;

/**
 * Every leg of a channel is read into reused buffers of 1 MiB. A plain read
 * takes whatever the kernel holds, up to the free tail of the current buffer
 * (at least 64 KiB), instead of Node's 64 KiB; TLS records (16 KiB) are
 * packed into the same buffers. Reading stops while 2 MiB of a direction are
 * being written, so a busy direction holds about 3 buffers, an idle one 1.
 */
export const READ_BUFFER_SIZES: ReadBufferSizes = {
  bufferBytes: 1 << 20,
  minReadBytes: 64 << 10,
  maxOutstandingBytes: 2 << 20,
};
