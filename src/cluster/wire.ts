/**
 * What crosses between nodes: faults as plain JSON (an error keeps its name,
 * message, stack and code), payloads of calls as v8 structured clone.
 */
import { deserialize, serialize } from "node:v8";
import type { Fault } from "../core/fault.js";
import { errorText } from "../core/describe.js";

/** A fault on the wire: `k` kind, `e` error, `f` cascade origin, `n` node. */
export interface WireFault {
  k: Fault["kind"];
  e?: WireError | { v: unknown };
  f?: number;
  n?: string;
}

interface WireError {
  name: string;
  message: string;
  stack?: string;
  code?: unknown;
}

/** An error that happened on another node, rebuilt here: same name, message, stack and `code`. */
function rebuildError(w: WireError): Error {
  const e = new Error(w.message);
  Object.defineProperty(e, "name", { value: w.name, configurable: true, writable: true, enumerable: false });
  if (w.stack !== undefined) e.stack = w.stack;
  if (w.code !== undefined) (e as { code?: unknown }).code = w.code;
  return e;
}

function errorToWire(error: unknown): WireError | { v: unknown } {
  // Never throws: a user's error whose getters or toString throw is sent as its text (errorText never throws).
  try {
    if (error instanceof Error) {
      const code = (error as { code?: unknown }).code;
      const stack = error.stack;
      return { name: String(error.name), message: String(error.message), ...(typeof stack === "string" && { stack }), ...(typeof code === "string" || typeof code === "number" ? { code } : {}) };
    }
    // Anything else that was thrown: kept if JSON can carry it (undefined, functions and symbols it cannot), else its text.
    if (JSON.stringify(error) !== undefined) return { v: error };
  } catch {
    // fall through to its text
  }
  return { v: errorText(error) };
}

export function faultToWire(fault: Fault | undefined): WireFault | null {
  if (fault === undefined) return null;
  switch (fault.kind) {
    case "error":
      return { k: "error", e: errorToWire(fault.error) };
    case "cascade":
      return { k: "cascade", f: fault.from };
    case "noconnection":
      return { k: "noconnection", n: fault.node };
    default:
      return { k: fault.kind };
  }
}

export function faultFromWire(w: WireFault | null | undefined): Fault | undefined {
  if (w === null || w === undefined) return undefined;
  switch (w.k) {
    case "error": {
      const e = w.e;
      if (e === undefined) return { kind: "error" };
      return { kind: "error", error: "v" in e ? e.v : rebuildError(e) };
    }
    case "cascade":
      return { kind: "cascade", from: w.f ?? -1 };
    case "noconnection":
      return { kind: "noconnection", node: w.n ?? "" };
    case "drop":
    case "timeout":
    case "killed":
      return { kind: w.k };
    default:
      // A kind this version does not know (a newer peer): a fault all the same, never a clean exit.
      return { kind: "error", error: new Error(`a fault of kind ${JSON.stringify((w as { k?: unknown }).k)} from a remote node`) };
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeJson(x: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(x));
}

export function decodeJson<T>(data: Uint8Array): T {
  return JSON.parse(decoder.decode(data)) as T;
}

// Payload tags. v8's serialisation always starts with its version tag 0xFF, so
// one leading byte tells the three encodings apart: raw bytes and strings skip
// v8, whose host-object path for a Uint8Array costs microseconds.
const BYTES = 1;
const TEXT = 2;

/** A payload to bytes: a Uint8Array as itself, a string as UTF-8, anything else as v8 structured clone (throws on what cannot be cloned). */
export function encodeValue(x: unknown): Uint8Array {
  if (typeof x === "string") {
    const out = new Uint8Array(x.length * 3 + 1);
    out[0] = TEXT;
    const { written } = encoder.encodeInto(x, out.subarray(1));
    return out.subarray(0, written + 1);
  }
  if (x instanceof Uint8Array && (x.constructor === Uint8Array || Buffer.isBuffer(x))) {
    const out = new Uint8Array(x.length + 1);
    out[0] = BYTES;
    out.set(x, 1);
    return out;
  }
  return serialize(x);
}

/** The payload `encodeValue` made; bytes come back as a Uint8Array (a copy). */
export function decodeValue(data: Uint8Array): unknown {
  const tag = data[0];
  if (tag === TEXT) return decoder.decode(data.subarray(1));
  if (tag === BYTES) return new Uint8Array(data.subarray(1)); // a copy, and a plain Uint8Array even when data is a Buffer
  return deserialize(data);
}
