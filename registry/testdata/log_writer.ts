// A child process for crash tests: appends records to the TxnLog of DIR until killed, printing `READY ZXID` once
// open and `acked ZXID` once a record is durable. Usage: log_writer.ts DIR SNAPSHOT_EVERY_TXNS
import { Logger, setLogger } from "../../reactor/logger.ts";
import { TxnLog } from "../storage/txn_log.ts";
import { appendRange, backend } from "./storage_fixture.ts";

setLogger(new Logger({ outputs: [] }));
const [dir, every] = Deno.args;
const { log, tree } = await TxnLog.open(backend, dir!, { snapshotEveryTxns: Number(every) });
const out = (line: string) => Deno.stdout.writeSync(new TextEncoder().encode(`${line}\n`));
out(`READY ${log.lastZxid}`);
for (let i = 0;; i++) {
  // Batches of one to four records: a roll can follow a batch of any size.
  const errors = await appendRange(log, tree, 1 + (i % 4));
  if (errors.some((e) => e !== undefined)) throw errors.find((e) => e !== undefined);
  out(`acked ${log.lastZxid}`);
}
