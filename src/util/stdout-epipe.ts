/**
 * A reader that stops early (`vmgate-pki list | head -1`, `vmgate sessions |
 * grep -m1 ...`) closes the pipe; the next write fails with EPIPE. That is the
 * reader's choice, not a failure of the command: no stack trace on stderr.
 * `then` decides what happens next (the command may still have work to do).
 * Any other stdout error stays an error.
 */
export function onStdoutEpipe(then: () => void, stream: NodeJS.WriteStream = process.stdout): void {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
    then();
  });
}
