import assert from "node:assert/strict";
import { getLogger, LogLevel, setLogger } from "../reactor/logger.ts";
import { RpcApplication } from "./rpc_application.ts";
import { needs } from "../reactor/testdata/permissions.ts";

async function withConfig(config: Record<string, unknown>, body: (path: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  const previous = getLogger();
  try {
    await Deno.writeTextFile(`${dir}/caller.json`, JSON.stringify(config));
    await body(`${dir}/caller.json`);
  } finally {
    setLogger(previous);
    await Deno.remove(dir, { recursive: true });
  }
}

const CALLER = { dwt_src_ip: "127.0.0.1", dwt_src_port: 10606 };

Deno.test(
  "RpcApplication.init honours the seed's -l/--loglevel numbers over the file's log_level",
  needs("read", "write"),
  async () => {
    await withConfig({ ...CALLER, log_level: "DEBUG" }, async (path) => {
      const app = await RpcApplication.init(["-i", path, "-l", "1"]);
      assert.equal(app.config.logLevel, LogLevel.INFO);
      assert.equal(getLogger().level, LogLevel.INFO);
      const seedStyle = await RpcApplication.init(["-c", path, "--loglevel", "3"]);
      assert.equal(seedStyle.config.logLevel, LogLevel.ERROR);
      const byName = await RpcApplication.init(["-i", path, "-l", "warn"]);
      assert.equal(byName.config.logLevel, LogLevel.WARN);
      const fromFile = await RpcApplication.init(["-i", path]);
      assert.equal(fromFile.config.logLevel, LogLevel.DEBUG);
    });
  },
);

Deno.test(
  "RpcApplication.init refuses a log level outside the seed's 0-4, naming the value",
  needs("read", "write"),
  async () => {
    await withConfig(CALLER, async (path) => {
      await assert.rejects(RpcApplication.init(["-i", path, "-l", "5"]), {
        name: "ConfigError",
        message: /^Cannot read the command line: .*current value is '5'/,
      });
      await assert.rejects(RpcApplication.init(["-i", path, "-l"]), {
        name: "ConfigError",
        message: /'-l' needs a level/,
      });
    });
    await withConfig({ ...CALLER, log_level: 7 }, async (path) => {
      await assert.rejects(RpcApplication.init(["-i", path]), { name: "ConfigError", message: /'log_level'.*'7'/ });
    });
  },
);
