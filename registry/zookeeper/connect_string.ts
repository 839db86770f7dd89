/**
 * ZooKeeper's connect strings, `host:port[,host:port...][/chroot]`: the servers of an ensemble and a chroot.
 *
 * @module
 */

import { InetAddress } from "../../reactor/inet_address.ts";
import { validatePath } from "../path.ts";

/** ZooKeeper's client port, taken when a connect string names a host without one. */
export const ZOOKEEPER_DEFAULT_PORT = 2181;

/**
 * A parsed connect string.
 *
 * @example
 * ```ts
 * import type { ZooKeeperRegistry } from "./zookeeper_registry.ts";
 *
 * // "10.0.0.1:2181,10.0.0.2:2181/apps/rpc"
 * const where = (registry: ZooKeeperRegistry) =>
 *   `${registry.connectString.servers.join(",")}${registry.connectString.chroot}`;
 * ```
 */
export interface ZooKeeperConnectString {
  /** The ensemble's servers, in the order given. */
  servers: InetAddress[];
  /** The chroot, such as `/apps/rpc`, or "" for none. */
  chroot: string;
}

/** Parse `host:port[,host:port...][/chroot]`; throws a TypeError naming what is wrong. */
export function parseConnectString(text: string): ZooKeeperConnectString {
  const slash = text.indexOf("/");
  const hosts = slash < 0 ? text : text.slice(0, slash);
  let chroot = slash < 0 ? "" : text.slice(slash);
  if (chroot === "/") chroot = "";
  if (chroot !== "") {
    try {
      validatePath(chroot);
    } catch (error) {
      throw new TypeError(`Cannot parse ZooKeeper connect string '${text}': bad chroot: ${(error as Error).message}`);
    }
  }
  const servers = hosts.split(",").map((host) => host.trim()).filter((host) => host !== "").map((host) => {
    try {
      return InetAddress.parse(host, ZOOKEEPER_DEFAULT_PORT);
    } catch (error) {
      throw new TypeError(`Cannot parse ZooKeeper connect string '${text}': ${(error as Error).message}`);
    }
  });
  if (servers.length === 0) throw new TypeError(`Cannot parse ZooKeeper connect string '${text}': no server`);
  return { servers, chroot };
}
