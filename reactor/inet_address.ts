/**
 * A network endpoint (muduo's InetAddress): a host and a port, validated once, printed as `ip:port`.
 *
 * @module
 */

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const HOST_LABEL = /^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;

function isIPv6(text: string): boolean {
  if (!/^[0-9A-Fa-f:.]+$/.test(text) || !text.includes(":")) return false;
  // An embedded IPv4 tail (::ffff:1.2.3.4) counts as two groups.
  let groups = text;
  const lastColon = text.lastIndexOf(":");
  const tail = text.slice(lastColon + 1);
  if (tail.includes(".")) {
    if (!IPV4.test(tail)) return false;
    groups = `${text.slice(0, lastColon + 1)}0:0`;
  }
  const doubleColons = groups.split("::").length - 1;
  if (doubleColons > 1) return false;
  const parts = groups.split(":");
  if (doubleColons === 0) return parts.length === 8 && parts.every((part) => /^[0-9A-Fa-f]{1,4}$/.test(part));
  const [head, rest] = groups.split("::") as [string, string];
  const headParts = head === "" ? [] : head.split(":");
  const restParts = rest === "" ? [] : rest.split(":");
  return headParts.length + restParts.length <= 7 &&
    [...headParts, ...restParts].every((part) => /^[0-9A-Fa-f]{1,4}$/.test(part));
}

function isHostName(text: string): boolean {
  const labels = text.split(".");
  // All-numeric names are malformed IPv4 addresses (such as 256.1.1.1), not host names.
  return text.length <= 253 && labels.every((label) => HOST_LABEL.test(label)) &&
    !labels.every((label) => /^\d+$/.test(label));
}

/**
 * An immutable IPv4, IPv6 or host-name endpoint.
 *
 * @example Parse and print
 * ```ts
 * import { InetAddress } from "./inet_address.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(InetAddress.parse("127.0.0.1:8080").toString(), "127.0.0.1:8080");
 * assert.equal(InetAddress.parse("[::1]:8080").family, 6);
 * assert.throws(() => new InetAddress("127.0.0.1", 70000), RangeError);
 * ```
 */
export class InetAddress {
  /** The host: a numeric address (IPv6 without brackets) or a DNS name. */
  readonly hostname: string;
  /** The port, in [0, 65535]. */
  readonly port: number;
  /** 4 or 6 for numeric addresses; 0 for a host name (resolved when connecting). */
  readonly family: 0 | 4 | 6;

  /** Validate and build an address. Throws a RangeError for a bad port, a TypeError for a bad host. */
  constructor(hostname: string, port: number) {
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      throw new RangeError(
        `Cannot create address as 'port' must be an integer in [0, 65535]: current value is ${port}`,
      );
    }
    if (typeof hostname !== "string" || hostname === "") {
      throw new TypeError(
        `Cannot create address as 'hostname' must be a non-empty string: current value is '${hostname}'`,
      );
    }
    if (IPV4.test(hostname)) {
      this.family = 4;
    } else if (isIPv6(hostname)) {
      this.family = 6;
    } else if (isHostName(hostname)) {
      this.family = 0;
    } else {
      throw new TypeError(
        `Cannot create address as 'hostname' must be an IPv4 address, an IPv6 address or a host name: ` +
          `current value is '${hostname}'`,
      );
    }
    this.hostname = hostname;
    this.port = port;
  }

  /**
   * Parse `host:port`, `[v6]:port`, or a bare host when `defaultPort` is given (a bare IPv6 address only then).
   * Throws a TypeError naming the text when it does not parse.
   */
  static parse(text: string, defaultPort?: number): InetAddress {
    const trimmed = text.trim();
    if (trimmed.startsWith("[")) {
      const match = /^\[([^\]]+)\](?::(\d+))?$/.exec(trimmed);
      if (match === null) {
        throw new TypeError(`Cannot parse address as it must look like '[::1]:8080': current value is '${text}'`);
      }
      return new InetAddress(match[1]!, InetAddress.#port(match[2], defaultPort, text));
    }
    const colons = trimmed.split(":").length - 1;
    if (colons === 0) return new InetAddress(trimmed, InetAddress.#port(undefined, defaultPort, text));
    if (colons > 1) {
      // A bare IPv6 address: only unambiguous with a default port.
      return new InetAddress(trimmed, InetAddress.#port(undefined, defaultPort, text));
    }
    const index = trimmed.lastIndexOf(":");
    const host = trimmed.slice(0, index);
    return new InetAddress(
      host === "" ? "0.0.0.0" : host,
      InetAddress.#port(trimmed.slice(index + 1), defaultPort, text),
    );
  }

  static #port(portText: string | undefined, defaultPort: number | undefined, text: string): number {
    if (portText === undefined) {
      if (defaultPort === undefined) {
        throw new TypeError(
          `Cannot parse address as it has no port and no default port was given: current value is '${text}'`,
        );
      }
      return defaultPort;
    }
    if (!/^\d{1,5}$/.test(portText)) {
      throw new RangeError(
        `Cannot parse address as 'port' must be an integer in [0, 65535]: current value is '${text}'`,
      );
    }
    return Number(portText);
  }

  /** The host as text, IPv6 without brackets (muduo's toIp). */
  toIp(): string {
    return this.hostname;
  }

  /** `ip:port`, IPv6 in brackets (muduo's toIpPort). */
  toString(): string {
    return this.family === 6 ? `[${this.hostname}]:${this.port}` : `${this.hostname}:${this.port}`;
  }

  /** Whether the host is a loopback address or `localhost`. */
  get isLoopback(): boolean {
    return this.hostname === "localhost" || this.hostname === "::1" || /^127\./.test(this.hostname);
  }

  /** Whether the host is the wildcard address. */
  get isAny(): boolean {
    return this.hostname === "0.0.0.0" || this.hostname === "::";
  }

  /** Whether both name the same host and port. */
  equals(other: InetAddress): boolean {
    return this.hostname === other.hostname && this.port === other.port;
  }
}
