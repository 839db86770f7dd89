/**
 * Starts a real ZooKeeper ensemble (Debian's `zookeeper` package, one `QuorumPeerMain` JVM per server) on 127.0.0.1
 * for fault harnesses, and breaks it the ways operators see it break: `kill -9`, SIGSTOP/SIGCONT, restart. Reads the
 * ensemble's own view through the four-letter words (`srvr` for a server's role, `cons` for the sessions connected
 * to it), so the harness never depends on the client under test to learn where the leader or a session is.
 */

import { ensureDebianPackage } from "./debian_package.ts";

const JARS = "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar";

/** A server's state as the ensemble owner left it (not as ZooKeeper sees it: see {@linkcode ZooKeeperEnsemble.mode}). */
export const ServerState = { RUNNING: "running", FROZEN: "frozen", KILLED: "killed" } as const;
/** One of {@linkcode ServerState}. */
export type ServerState = typeof ServerState[keyof typeof ServerState];

/** What a server answers `srvr` with: its role, or why it has none. */
export type ServerMode = "leader" | "follower" | "observer" | "standalone" | "not serving" | "unreachable";

/** Options of {@linkcode ZooKeeperEnsemble.start}. */
export interface ZooKeeperEnsembleOptions {
  /** How many servers. @default 3 */
  size?: number;
  /** ZooKeeper's tick; sessions may last 2 to 20 ticks. @default 1000 */
  tickTimeMs?: number;
  /** Each JVM's heap (`-Xmx`), in MiB. @default 128 */
  heapMiB?: number;
  /** How long start (and a restart) may take to have a quorum serving, in milliseconds. @default 60000 */
  startTimeoutMs?: number;
}

/** One server of the ensemble. */
export interface EnsembleServer {
  /** Its `myid`, 1-based. */
  readonly id: number;
  /** Its client port on 127.0.0.1. */
  readonly clientPort: number;
  /** `127.0.0.1:<clientPort>`. */
  readonly address: string;
  /** Running, frozen (SIGSTOP) or killed. */
  readonly state: ServerState;
  /** The JVM's process id (undefined while killed). */
  readonly pid: number | undefined;
}

interface ServerSlot {
  id: number;
  clientPort: number;
  peerPort: number;
  electionPort: number;
  dir: string;
  child: Deno.ChildProcess | undefined;
  state: ServerState;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/**
 * Send a four-letter word and read the answer until the server closes; rejects after `timeoutMs` (a frozen server
 * accepts in the kernel and never answers).
 */
export async function fourLetterWord(port: number, word: string, timeoutMs = 1000): Promise<string> {
  let conn: Deno.TcpConn | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      try {
        conn?.close();
      } catch {
        // already closed
      }
      reject(new Error(`No answer to '${word}' from 127.0.0.1:${port} within ${timeoutMs} ms`));
    }, timeoutMs);
  });
  const exchange = (async () => {
    conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(new TextEncoder().encode(word));
    const chunks: Uint8Array[] = [];
    const buf = new Uint8Array(16 * 1024);
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      chunks.push(buf.slice(0, n));
    }
    return new TextDecoder().decode(new Uint8Array(chunks.flatMap((chunk) => [...chunk])));
  })();
  exchange.catch(() => {}); // it rejects once the timeout closes the socket
  try {
    return await Promise.race([exchange, timeout]);
  } finally {
    clearTimeout(timer);
    try {
      conn?.close();
    } catch {
      // closed by the timeout or the read
    }
  }
}

/**
 * A ZooKeeper ensemble of real servers on 127.0.0.1, each with its own data dir, `myid`, client, peer and election
 * ports, tickTime 1000 and a small heap; four-letter words all allowed, the AdminServer off. The owner may call any
 * method at any time from one task; methods on one server wait for what they did to take effect.
 *
 * @example
 * ```ts ignore
 * await using ensemble = await ZooKeeperEnsemble.start();
 * const leader = await ensemble.leader();
 * await ensemble.kill(leader!);
 * await ensemble.waitForQuorum();
 * await ensemble.restart(leader!);
 * ```
 */
export class ZooKeeperEnsemble {
  /** The connect string naming every server (no chroot). */
  readonly connectString: string;
  readonly #slots: ServerSlot[];
  readonly #root: string;
  readonly #options: Required<ZooKeeperEnsembleOptions>;

  private constructor(root: string, slots: ServerSlot[], options: Required<ZooKeeperEnsembleOptions>) {
    this.#root = root;
    this.#slots = slots;
    this.#options = options;
    this.connectString = slots.map((slot) => `127.0.0.1:${slot.clientPort}`).join(",");
  }

  /** Write the configs, start every server and wait until a quorum serves (installs the package if root). */
  static async start(options: ZooKeeperEnsembleOptions = {}): Promise<ZooKeeperEnsemble> {
    const resolved: Required<ZooKeeperEnsembleOptions> = {
      size: options.size ?? 3,
      tickTimeMs: options.tickTimeMs ?? 1000,
      heapMiB: options.heapMiB ?? 128,
      startTimeoutMs: options.startTimeoutMs ?? 60_000,
    };
    if (!Number.isInteger(resolved.size) || resolved.size < 1) {
      throw new RangeError(
        `Cannot start an ensemble as 'size' must be a positive integer: current value is ${resolved.size}`,
      );
    }
    await ensureDebianPackage("zookeeper", "/usr/share/java/zookeeper.jar");
    const root = await Deno.makeTempDir({ prefix: "zookeeper-ensemble-" });
    const slots: ServerSlot[] = Array.from({ length: resolved.size }, (_, index) => ({
      id: index + 1,
      clientPort: freePort(),
      peerPort: freePort(),
      electionPort: freePort(),
      dir: `${root}/zk${index + 1}`,
      child: undefined,
      state: ServerState.KILLED,
    }));
    const peers = slots.map((slot) => `server.${slot.id}=127.0.0.1:${slot.peerPort}:${slot.electionPort}`);
    for (const slot of slots) {
      await Deno.mkdir(`${slot.dir}/data`, { recursive: true });
      await Deno.writeTextFile(`${slot.dir}/data/myid`, `${slot.id}\n`);
      await Deno.writeTextFile(
        `${slot.dir}/zoo.cfg`,
        [
          `tickTime=${resolved.tickTimeMs}`,
          "initLimit=10",
          "syncLimit=5",
          `dataDir=${slot.dir}/data`,
          `clientPort=${slot.clientPort}`,
          "clientPortAddress=127.0.0.1",
          "admin.enableServer=false",
          "4lw.commands.whitelist=*",
          "maxClientCnxns=0",
          // A restarted server must find the others at once rather than after the default back-off.
          "cnxTimeout=1000",
          ...peers,
        ].join("\n") + "\n",
      );
    }
    const ensemble = new ZooKeeperEnsemble(root, slots, resolved);
    try {
      for (const slot of slots) ensemble.#spawn(slot);
      await ensemble.waitForQuorum({ timeoutMs: resolved.startTimeoutMs, all: true });
    } catch (error) {
      await ensemble.stop();
      throw error;
    }
    return ensemble;
  }

  /** The servers, by id order. */
  get servers(): EnsembleServer[] {
    return this.#slots.map((slot) => ({
      id: slot.id,
      clientPort: slot.clientPort,
      address: `127.0.0.1:${slot.clientPort}`,
      state: slot.state,
      pid: slot.child?.pid,
    }));
  }

  /**
   * `kill -9` server `id` (or send `signal`: SIGTERM is an operator's stop) and wait until it has exited; its data
   * stays for {@linkcode ZooKeeperEnsemble.restart}.
   */
  async kill(id: number, signal: Deno.Signal = "SIGKILL"): Promise<void> {
    const slot = this.#slot(id);
    const child = slot.child;
    if (child === undefined) return;
    if (slot.state === ServerState.FROZEN) child.kill("SIGCONT");
    child.kill(signal);
    await child.status;
    slot.child = undefined;
    slot.state = ServerState.KILLED;
  }

  /** SIGSTOP server `id`: its sockets stay open and silent, as a server in a long GC pause or a hung VM's. */
  freeze(id: number): void {
    const slot = this.#slot(id);
    if (slot.child === undefined || slot.state !== ServerState.RUNNING) return;
    slot.child.kill("SIGSTOP");
    slot.state = ServerState.FROZEN;
  }

  /** SIGCONT server `id` after {@linkcode ZooKeeperEnsemble.freeze}. */
  thaw(id: number): void {
    const slot = this.#slot(id);
    if (slot.child === undefined || slot.state !== ServerState.FROZEN) return;
    slot.child.kill("SIGCONT");
    slot.state = ServerState.RUNNING;
  }

  /** Start server `id` again on its ports and data after a kill, and wait until it serves (it joined a quorum). */
  async restart(id: number, timeoutMs: number = this.#options.startTimeoutMs): Promise<void> {
    const slot = this.#slot(id);
    if (slot.child !== undefined) return;
    this.#spawn(slot);
    const deadline = performance.now() + timeoutMs;
    while (!isServing(await this.mode(id))) {
      if (performance.now() > deadline) throw new Error(`ZooKeeper server ${id} did not serve within ${timeoutMs} ms`);
      await sleep(100);
    }
  }

  /** Server `id`'s role as it answers `srvr` (a frozen or killed one is "unreachable"). */
  async mode(id: number, timeoutMs = 500): Promise<ServerMode> {
    const slot = this.#slot(id);
    if (slot.state !== ServerState.RUNNING) return "unreachable";
    let answer: string;
    try {
      answer = await fourLetterWord(slot.clientPort, "srvr", timeoutMs);
    } catch {
      return "unreachable";
    }
    const mode = /^Mode: (\w+)/m.exec(answer)?.[1];
    if (mode === "leader" || mode === "follower" || mode === "observer" || mode === "standalone") return mode;
    return "not serving";
  }

  /** The id of the server that says it leads, if one does now. */
  async leader(): Promise<number | undefined> {
    const modes = await Promise.all(this.#slots.map((slot) => this.mode(slot.id)));
    const index = modes.indexOf("leader");
    return index < 0 ? undefined : this.#slots[index]!.id;
  }

  /** The session ids of the clients connected to server `id` now (`cons`), empty if it does not answer. */
  async sessions(id: number, timeoutMs = 500): Promise<bigint[]> {
    const slot = this.#slot(id);
    if (slot.state !== ServerState.RUNNING) return [];
    let answer: string;
    try {
      answer = await fourLetterWord(slot.clientPort, "cons", timeoutMs);
    } catch {
      return [];
    }
    return [...answer.matchAll(/sid=0x([0-9a-f]+)/g)].map((match) => BigInt("0x" + match[1]!));
  }

  /** The server a session is connected to now, by asking each running server (`cons`). */
  async serverOfSession(sessionId: bigint): Promise<number | undefined> {
    for (const slot of this.#slots) {
      if ((await this.sessions(slot.id)).includes(sessionId)) return slot.id;
    }
    return undefined;
  }

  /**
   * Wait until a leader serves with followers enough for a majority (with `all`, until every server not frozen or
   * killed serves too). Rejects after `timeoutMs`.
   */
  async waitForQuorum(options: { timeoutMs?: number; all?: boolean } = {}): Promise<void> {
    const timeoutMs = options.timeoutMs ?? this.#options.startTimeoutMs;
    const deadline = performance.now() + timeoutMs;
    const majority = Math.floor(this.#slots.length / 2) + 1;
    for (;;) {
      const modes = await Promise.all(this.#slots.map((slot) => this.mode(slot.id)));
      const serving = modes.filter(isServing).length;
      const running = this.#slots.filter((slot) => slot.state === ServerState.RUNNING).length;
      const leaders = modes.filter((mode) => mode === "leader" || mode === "standalone").length;
      if (leaders === 1 && serving >= majority && (!options.all || serving === running)) return;
      if (performance.now() > deadline) {
        throw new Error(`The ensemble had no quorum within ${timeoutMs} ms: modes ${modes.join(", ")}`);
      }
      await sleep(100);
    }
  }

  /** Stop every server (thawing frozen ones first) and remove the data. */
  async stop(): Promise<void> {
    for (const slot of this.#slots) {
      const child = slot.child;
      if (child === undefined) continue;
      try {
        if (slot.state === ServerState.FROZEN) child.kill("SIGCONT");
        child.kill("SIGKILL");
      } catch {
        // it exited on its own
      }
      await child.status;
      slot.child = undefined;
      slot.state = ServerState.KILLED;
    }
    await Deno.remove(this.#root, { recursive: true }).catch(() => {});
  }

  /** Same as {@linkcode ZooKeeperEnsemble.stop}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  #slot(id: number): ServerSlot {
    const slot = this.#slots[id - 1];
    if (slot === undefined) {
      throw new RangeError(`Cannot find ZooKeeper server ${id}: ids are 1 to ${this.#slots.length}`);
    }
    return slot;
  }

  #spawn(slot: ServerSlot): void {
    slot.child = new Deno.Command("java", {
      args: [
        `-Xmx${this.#options.heapMiB}m`,
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        "-cp",
        JARS,
        `-Dzookeeper.log.dir=${slot.dir}`,
        "-Dzookeeper.root.logger=INFO,ROLLINGFILE",
        "org.apache.zookeeper.server.quorum.QuorumPeerMain",
        `${slot.dir}/zoo.cfg`,
      ],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    slot.state = ServerState.RUNNING;
  }
}

function isServing(mode: ServerMode): boolean {
  return mode === "leader" || mode === "follower" || mode === "observer" || mode === "standalone";
}
