// The demo's isolated child: it crunches numbers in a worker thread, then,
// on its second run of bad luck, runs away into a loop that never yields.
// Only a real kill (terminating the thread) can stop it.
export async function crunch({ args, signal }) {
  const [runAwayAfterMs] = args;
  const started = Date.now();
  while (!signal.aborted) {
    if (runAwayAfterMs > 0 && Date.now() - started > runAwayAfterMs) {
      for (;;) {} // ignores its signal: stuck for good
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
