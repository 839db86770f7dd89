// grpc-js echo server on Node for bench/rpc_echo.ts. Prints "READY <port>".
import { createRequire } from "node:module";
const require = createRequire(import.meta.url);
const grpc = require("./grpc/node_modules/@grpc/grpc-js");
const loader = require("./grpc/node_modules/@grpc/proto-loader");

const definition = grpc.loadPackageDefinition(loader.loadSync(new URL("./echo.proto", import.meta.url).pathname));
const server = new grpc.Server();
server.addService(definition.bench.Echo.service, { Echo: (call, callback) => callback(null, call.request) });
server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, port) => {
  if (error) throw error;
  console.log(`READY ${port}`);
});
process.on("SIGTERM", () => server.forceShutdown() || process.exit(0));
