import type { DeviceId } from "./device-id.js";
import { LinkError } from "./link-error.js";
import { isLinkMode, type LinkMode } from "./link-mode.js";
import { isMessage, type Message } from "./message.js";
import { deliver, isClosed, link, Plugboard, unlink } from "./plugboard.js";
import { describeValue } from "./timer.js";

/**
 * A weak, cloneable handle to a device: send it messages, link through it,
 * see whether it is still connected. Holding a line never keeps its device
 * connected nor keeps the `Device` object from being garbage-collected.
 *
 * @example
 * ```ts
 * const line = worker.line();
 * supervisor.link(line, "monitor");
 * line.shutdown(supervisor.id);     // ask the worker to stop
 * ```
 */
export class Line {
  /** @internal */
  readonly _board: Plugboard;

  /** @internal Lines are made by `device.line()` or `line.clone()`. */
  constructor(board: Plugboard) {
    this._board = board;
  }

  /** The id of the device this line leads to. */
  get id(): DeviceId {
    return this._board.id;
  }

  /** False once the device has disconnected. */
  get isConnected(): boolean {
    return !isClosed(this._board);
  }

  /**
   * Put `message` in the device's mailbox. Returns false, and drops the
   * message, if the device has disconnected.
   *
   * @example
   * ```ts
   * if (!line.send(Message.shutdown(me.id))) console.log("already gone");
   * ```
   */
  send(message: Message): boolean {
    if (!isMessage(message)) {
      throw new LinkError("invalid-argument", "send() takes a Message: { kind: \"shutdown\" | \"disconnected\", from: DeviceId, … }");
    }
    return deliver(this._board, message);
  }

  /**
   * Ask the device to stop: sends `{ kind: "shutdown", from }`. Managed work
   * on it ends cleanly.
   *
   * @example
   * ```ts
   * line.shutdown(supervisor.id);
   * ```
   */
  shutdown(from: DeviceId): boolean {
    if (typeof from !== "number") throw new LinkError("invalid-argument", "shutdown() takes the id of the asking device");
    return deliver(this._board, { kind: "shutdown", from });
  }

  /**
   * Link the device behind this line to the one behind `other`, exactly as
   * {@link Device.link} does.
   *
   * @throws {LinkError} `self-link`, `device-down` (this line's device has disconnected), `invalid-argument`.
   * @example
   * ```ts
   * a.line().link(b.line(), "peer");
   * ```
   */
  link(other: Line, mode: LinkMode): void {
    link(this._board, boardOf(other), checkMode(mode));
  }

  /**
   * Remove what `link(other, mode)` added.
   *
   * @example
   * ```ts
   * a.line().unlink(b.line(), "monitor");
   * ```
   */
  unlink(other: Line, mode: LinkMode): void {
    unlink(this._board, boardOf(other), checkMode(mode));
  }

  /** A new line to the same device. */
  clone(): Line {
    return new Line(this._board);
  }

  /** True when both lines lead to the same device. */
  equals(other: Line): boolean {
    return other instanceof Line && other._board === this._board;
  }
}

/** @internal The plugboard behind a Device or a Line; anything else is bad input. */
export function boardOf(x: unknown): Plugboard {
  const board = (x as { _board?: unknown } | null | undefined)?._board;
  if (board instanceof Plugboard) return board;
  throw new LinkError("invalid-argument", "expected a Device or a Line");
}

/** @internal */
export function checkMode(mode: unknown): LinkMode {
  if (isLinkMode(mode)) return mode;
  throw new LinkError("invalid-argument", `link mode must be "monitor", "notify" or "peer", not ${describeValue(mode)}`);
}
