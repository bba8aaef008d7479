import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // `--expose-gc` lets the drop-detection tests collect a Device on purpose.
    execArgv: ["--expose-gc"],
    // An unhandled rejection anywhere fails the run (Vitest's default, stated so nobody turns it off).
    dangerouslyIgnoreUnhandledErrors: false,
    setupFiles: ["test/setup.ts"],
  },
});
