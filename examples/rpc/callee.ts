/**
 * The seed's callee: UserServiceRpc (Login, Register) implemented by extending the generated base class,
 * registered with a provider and published to the registry. `deno task callee -i examples/rpc/provider.json`.
 * Prints `READY <address>` once published; stops gracefully on SIGINT/SIGTERM.
 */

import { type CallContext, RpcApplication, type RpcProvider } from "../../rpc/mod.ts";
import {
  type LoginRequest,
  type LoginResponse,
  type RegisterRequest,
  type RegisterResponse,
  UserServiceRpcBase,
} from "./user_pb.ts";

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
const bytes = (value: string) => new TextEncoder().encode(value);

/** The user service: local business logic behind an RPC face, as in the seed. */
export class UserService extends UserServiceRpcBase {
  Login(request: LoginRequest, _context: CallContext): Partial<LoginResponse> {
    console.log("doLogin");
    console.log(`name: ${text(request.name)}, password: ${text(request.password)}`);
    const ok = request.name.length > 0 && request.password.length > 0;
    return {
      result: { errcode: ok ? 0 : 1, errmsg: bytes(ok ? "" : "login error: name and password are required") },
      success: ok,
    };
  }

  Register(request: RegisterRequest, _context: CallContext): Partial<RegisterResponse> {
    console.log("do Register");
    console.log(`name: ${text(request.name)}, password: ${text(request.password)}`);
    const id = Math.floor(Math.random() * 500) + 1;
    return { result: { errcode: 0, errmsg: bytes("success") }, success: id > 0, id };
  }
}

/** Registers the service: on the provider here, and on each Worker's when the config sets `rpcserver_threads`. */
export function registerServices(provider: RpcProvider): void {
  provider.registerService(UserService.definition, new UserService());
}

if (import.meta.main) {
  const app = await RpcApplication.init(Deno.args, { name: "callee" });
  const provider = await app.provider();
  await provider.registerModule(import.meta.url);
  await provider.start();
  console.log(`READY ${provider.advertisedAddress}`);
  const stop = async () => {
    await provider.stop();
    await app.close();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
}
