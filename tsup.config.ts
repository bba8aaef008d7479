import { defineConfig } from "tsup";

export default defineConfig({
  // The core, and one entry per optional subpath (each may import an optional peer dependency; the core never does).
  entry: { index: "src/index.ts", observer: "src/observer/index.ts", otel: "src/otel/index.ts", cluster: "src/cluster/index.ts" },
  format: ["esm", "cjs"],
  dts: true,
  sourcemap: true,
  clean: true,
  target: "node20",
  platform: "node",
  // Shared chunks: a subpath and the root must share one copy of each class (instanceof, one device-id counter).
  splitting: true,
  // Optional peers stay imports of the subpath that needs them.
  external: ["nats", "@opentelemetry/api"],
});
