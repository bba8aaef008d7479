import { request as httpRequest } from "node:http";

/** A raw HTTP request, so tests can set any header (Host, Origin) a browser or fetch would refuse to. */
export function request(url: string, options: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: options.method ?? "GET", headers: options.headers ?? {}, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(options.body);
  });
}

export interface SseEvent {
  event: string;
  data: any;
}

/** An SSE client over fetch: `next()` resolves the next event (optionally of one name). */
export async function sse(url: string, headers: Record<string, string> = {}) {
  const controller = new AbortController();
  const res = await fetch(new URL("events", url), { headers, signal: controller.signal });
  if (!res.ok || res.body === null) throw new Error(`GET /events: ${res.status}`);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  const queue: SseEvent[] = [];
  let buf = "";
  let ended = false;
  const fill = async (): Promise<void> => {
    const { value, done } = await reader.read();
    if (done) {
      ended = true;
      return;
    }
    buf += value;
    let i: number;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      let event = "message";
      let data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) event = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      if (data !== "") queue.push({ event, data: JSON.parse(data) });
    }
  };
  return {
    status: res.status,
    contentType: res.headers.get("content-type"),
    async next(name?: string): Promise<SseEvent> {
      for (;;) {
        const i = queue.findIndex((e) => name === undefined || e.event === name);
        if (i >= 0) return queue.splice(i, 1)[0] as SseEvent;
        if (ended) throw new Error("the event stream ended");
        await fill();
      }
    },
    /** Resolves once the server ends the stream. */
    async ended(): Promise<void> {
      while (!ended) await fill();
    },
    close(): void {
      controller.abort();
      reader.cancel().catch(() => {});
    },
  };
}

/** Wait until `cond()` holds, turning the event loop (for state changes that have no event of their own). */
export async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
