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
 * Every leg of a channel is read into reused buffers of 2 MiB. A plain read
 * takes whatever the kernel holds, up to the free tail of the current buffer
 * (at least 64 KiB), instead of Node's 64 KiB; TLS records (16 KiB) are
 * packed into the same buffers. Reading stops while 4 MiB of a direction are
 * being written (in practice the writer's 1 MiB high-water mark stops it
 * first). Measured same-run (docs/performance.md): 4 MiB buffers beat 1 MiB
 * by 4 % CPU on one stream and 8 % on four, 2 MiB did as well as 4 MiB with
 * half the memory, 256 KiB was 46 % worse, and a 4 MiB high-water mark
 * changed nothing. A busy direction touches about 4 buffers (8 MiB); an
 * idle one allocates one and touches none of it, so 64 idle channels stay
 * near 100 MiB of RSS.
 */
export const READ_BUFFER_SIZES: ReadBufferSizes = {
  bufferBytes: 2 << 20,
  minReadBytes: 64 << 10,
  maxOutstandingBytes: 4 << 20,
};
