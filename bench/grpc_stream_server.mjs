// grpc-js streaming server on Node for bench/stream_bench.ts: bench.Stream from stream.proto. Prints "READY <port>".
import { createRequire } from "node:module";
const require = createRequire(import.meta.url);
const grpc = require("./grpc/node_modules/@grpc/grpc-js");
const loader = require("./grpc/node_modules/@grpc/proto-loader");

const definition = grpc.loadPackageDefinition(loader.loadSync(new URL("./stream.proto", import.meta.url).pathname));
const server = new grpc.Server();
server.addService(definition.bench.Stream.service, {
  // As fast as the stream takes them: write until write() says the buffer is full, go on at 'drain'. Bounded in
  // count and time (checked every 256 Chunks), and stopped by the caller's cancel.
  Flood: (call) => {
    const { size, count, maxMs } = call.request;
    const chunk = { payload: Buffer.alloc(size, 0x61) };
    const until = performance.now() + maxMs;
    let sent = 0;
    let stopped = false;
    call.on("cancelled", () => stopped = true);
    call.on("error", () => stopped = true);
    const pump = () => {
      while (!stopped && sent < count && ((sent & 255) !== 0 || performance.now() < until)) {
        sent++;
        if (!call.write(chunk)) {
          call.once("drain", pump);
          return;
        }
      }
      if (!stopped) call.end();
    };
    pump();
  },
  Chat: (call) => {
    call.on("data", (chunk) => call.write(chunk));
    call.on("end", () => call.end());
    call.on("error", () => {});
  },
});
server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, port) => {
  if (error) throw error;
  console.log(`READY ${port}`);
});
process.on("SIGTERM", () => server.forceShutdown() || process.exit(0));
