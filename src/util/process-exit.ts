/**
 * Last-resort cleanup of things that outlive this process unless someone acts:
 * child processes in their own process group (QEMU), temp dirs, network
 * namespaces. Code that creates one registers a synchronous cleanup and
 * unregisters it once it has cleaned up normally:
 *
 *   const forget = onProcessExit(() => rmSync(dir, { recursive: true, force: true }));
 *   try { ... } finally { await rm(dir, ...); forget(); }
 *
 * Cleanups run when the process exits normally, on an uncaught error, or on
 * SIGINT/SIGTERM/SIGHUP; after a signal the signal is raised again with its
 * default action, so the exit status still says "killed by SIGINT". Nothing
 * can run on SIGKILL.
 */

const exitCleanups = new Set<() => void>();
let exitHooksInstalled = false;

/**
 * Registers a synchronous cleanup; returns the function that unregisters it.
 * Cleanups run newest first (processes die before the dirs and namespaces
 * they live in go), each at most once, and one that throws does not stop the
 * others.
 */
export function onProcessExit(cleanup: () => void): () => void {
  installExitHooks();
  exitCleanups.add(cleanup);
  return () => {
    exitCleanups.delete(cleanup);
  };
}

function runExitCleanups(): void {
  for (const cleanup of [...exitCleanups].reverse()) {
    exitCleanups.delete(cleanup);
    try {
      cleanup();
    } catch {
      // best effort: the process is going away
    }
  }
}

function installExitHooks(): void {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  process.on('exit', runExitCleanups);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      runExitCleanups();
      // Our listener is gone (once): unless someone else listens, this is the default action.
      process.kill(process.pid, signal);
    });
  }
}
