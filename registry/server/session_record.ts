/**
 * What the tree keeps of an open session so it survives a restart: a leaf that the tree and its snapshot writer both
 * import.
 *
 * @module
 */

/** What the tree keeps of an open session so it survives a restart (the server keeps the rest). */
export interface SessionRecord {
  /** The session's secret (the heartbeat and resume key). */
  readonly secret: Uint8Array;
  /** Whether it may change the tree (auth token given). */
  readonly authorized: boolean;
  /** The token it connected with ("" for none), for per-path ACLs. */
  readonly token: string;
}
