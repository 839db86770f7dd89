/**
 * The seed's UserService: UserServiceRpc (Login, Register) implemented by extending the generated base class.
 * A module of its own so a provider with threads can load it in each Worker (`registerServices`).
 */

import type { CallContext, RpcProvider } from "../../rpc/mod.ts";
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
