import { describe, expect, it } from "vitest";
import { deviceLabel, errorText, faultText } from "../../src/core/describe.js";
import { Fault } from "../../src/index.js";

describe("naming devices and faults in messages", () => {
  it("a device is named by its name when it has one, else by #id", () => {
    expect(deviceLabel(3, "db")).toBe('device "db" (#3)');
    expect(deviceLabel(3, undefined)).toBe("device #3");
    expect(deviceLabel(4, 'with "quotes"')).toBe('device "with \\"quotes\\"" (#4)');
  });

  it("a fault in a few words: the error's message, the cascade's source, else its kind", () => {
    expect(faultText(undefined)).toBe("clean");
    expect(faultText(Fault.error(new Error("connection reset")))).toBe("error: connection reset");
    expect(faultText(Fault.error(new TypeError("bad")))).toBe("error: bad");
    expect(faultText(Fault.error())).toBe("error");
    expect(faultText(Fault.cascade(12))).toBe("cascade from device #12");
    expect(faultText(Fault.timeout)).toBe("timeout");
    expect(faultText(Fault.killed)).toBe("killed");
    expect(faultText(Fault.drop)).toBe("drop");
  });

  it("what was thrown never breaks the message: hostile toString, message getters, null prototypes", () => {
    const hostile = {
      toString() {
        throw new Error("no");
      },
    };
    expect(errorText(hostile)).toBe("[object Object]");
    const badMessage = new Error("x");
    Object.defineProperty(badMessage, "message", {
      get() {
        throw new Error("no");
      },
    });
    expect(errorText(badMessage)).toBe("[object Error]");
    expect(errorText(Object.create(null))).toBe("[object Object]");
    expect(errorText("disk full")).toBe("disk full");
    expect(errorText(undefined)).toBe("undefined");
    expect(faultText(Fault.error(hostile))).toBe("error: [object Object]");
  });
});
