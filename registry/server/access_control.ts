/**
 * Who may change what: the server-wide `authToken` and per-path ACLs. Tokens are checked once, when a session
 * opens: a token the server does not know is refused (AUTH_FAILED) and never stored; a session without a token
 * may read. A change at or under an ACL prefix needs a session holding one of that prefix's tokens (the longest
 * matching prefix decides, whatever `authToken` says); a change elsewhere needs `authToken` when it is set. An
 * ephemeral node may not be created where it would block a protected prefix
 * below it (an ephemeral node can have no children).
 *
 * @module
 */

import { RegistryError, RegistryErrorCode } from "../registry_error.ts";

/** Options of {@linkcode AccessControl}. */
export interface AccessControlOptions {
  /**
   * When set, changes need a session that connected with this token (or, under an ACL prefix, with one of its).
   * @default {undefined}
   */
  authToken?: string;
  /**
   * Per-path ACLs: prefix → tokens.
   * @default {{}}
   */
  acl?: Record<string, string[]>;
  /**
   * The longest token accepted, in bytes of UTF-8.
   * @default {1024}
   */
  maxAuthTokenBytes?: number;
}

/** What a session may do, decided when it opens. */
export interface Credentials {
  /** Whether it may change the tree at all. */
  readonly authorized: boolean;
  /** The (known) token it presented, "" for none. */
  readonly token: string;
}

interface Rule {
  readonly prefix: string;
  readonly tokens: ReadonlySet<string>;
}

const encoder = new TextEncoder();

/**
 * The access rules of one server.
 *
 * @example
 * ```ts
 * import { AccessControl } from "./access_control.ts";
 * import assert from "node:assert/strict";
 *
 * const access = new AccessControl({ acl: { "/svc": ["t1"] } });
 * const anonymous = access.credentials("");
 * assert.throws(() => access.checkChange(anonymous, "create", "/svc/a", false), /ACL of '\/svc'/);
 * access.checkChange(access.credentials("t1"), "create", "/svc/a", false);
 * ```
 */
export class AccessControl {
  readonly #authToken: string | undefined;
  readonly #rules: Rule[];
  readonly #known: ReadonlySet<string>;
  readonly #maxTokenBytes: number;

  /** Rules from the server's options (validated by the config loader; prefixes are normalised here). */
  constructor(options: AccessControlOptions = {}) {
    this.#authToken = options.authToken;
    this.#rules = Object.entries(options.acl ?? {}).map(([prefix, tokens]) => ({
      prefix: prefix.length > 1 && prefix.endsWith("/") ? prefix.replace(/\/+$/, "") || "/" : prefix,
      tokens: new Set(tokens.filter((token) => token !== "")),
    }));
    const known = new Set<string>();
    if (this.#authToken !== undefined && this.#authToken !== "") known.add(this.#authToken);
    for (const rule of this.#rules) for (const token of rule.tokens) known.add(token);
    this.#known = known;
    this.#maxTokenBytes = options.maxAuthTokenBytes ?? 1024;
  }

  /** Credentials of a session opening with `token` ("" for none); AUTH_FAILED for a token nobody configured. */
  credentials(token: string): Credentials {
    if (token === "") return { authorized: this.#authToken === undefined, token: "" };
    if (token.length > this.#maxTokenBytes || encoder.encode(token).length > this.#maxTokenBytes) {
      throw new RegistryError(
        RegistryErrorCode.AUTH_FAILED,
        `Cannot open a session as its auth token is longer than ${this.#maxTokenBytes} bytes`,
      );
    }
    if (!this.#known.has(token)) {
      // With no tokens configured a token grants nothing, and is not kept.
      if (this.#known.size === 0) return { authorized: true, token: "" };
      throw new RegistryError(RegistryErrorCode.AUTH_FAILED, "Cannot open a session as its auth token is not valid");
    }
    return { authorized: this.#authToken === undefined || token === this.#authToken, token };
  }

  /** Throw NO_AUTH unless `credentials` may `what` (create, set, delete) the node at `path`. */
  checkChange(credentials: Credentials, what: string, path: string, ephemeral: boolean): void {
    // Under an ACL prefix its rule alone decides; elsewhere the server-wide token does.
    const rule = this.#ruleFor(path);
    if (rule !== undefined) {
      if (!rule.tokens.has(credentials.token)) {
        throw new RegistryError(
          RegistryErrorCode.NO_AUTH,
          `Cannot ${what} '${path}' as the ACL of '${rule.prefix}' does not admit this session's token`,
        );
      }
    } else if (!credentials.authorized) {
      throw new RegistryError(RegistryErrorCode.NO_AUTH, `Cannot ${what} '${path}' as this session is not authorized`);
    }
    if (!ephemeral) return;
    // An ephemeral node above a protected prefix would stop its owners from creating anything under it.
    for (const below of this.#rules) {
      if (below.prefix.startsWith(path === "/" ? "/" : `${path}/`) && !below.tokens.has(credentials.token)) {
        throw new RegistryError(
          RegistryErrorCode.NO_AUTH,
          `Cannot create ephemeral '${path}' as it would block '${below.prefix}', whose ACL does not admit this session's token`,
        );
      }
    }
  }

  // The rule with the longest prefix that covers `path` ("/a" covers "/a" and "/a/b", not "/ab").
  #ruleFor(path: string): Rule | undefined {
    let best: Rule | undefined;
    for (const rule of this.#rules) {
      const covers = rule.prefix === "/" || path === rule.prefix || path.startsWith(`${rule.prefix}/`);
      if (covers && (best === undefined || rule.prefix.length > best.prefix.length)) best = rule;
    }
    return best;
  }
}
