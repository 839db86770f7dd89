/**
 * The seed's caller: one channel, two stubs; Login, Register and two GetInfo calls, each printed with its
 * result. `deno task caller -i examples/rpc/caller.json`. Exits 1 if any call fails.
 */

import { exitOnFatalError, RpcApplication, RpcController } from "../../rpc/mod.ts";
import { defaultBackend } from "../../reactor/backend/mod.ts";
import { newInfoServiceRpcStub } from "./info_pb.ts";
import { newUserServiceRpcStub } from "./user_pb.ts";

const text = (bytes: Uint8Array | undefined) => new TextDecoder().decode(bytes ?? new Uint8Array());
const bytes = (value: string) => new TextEncoder().encode(value);

/** Make the seed's four calls and print them; resolves with the number of failures. */
export async function runCaller(app: RpcApplication, print: (line: string) => void): Promise<number> {
  const channel = await app.channel({ timeoutMs: 3000 });
  const userStub = newUserServiceRpcStub(channel);
  const infoStub = newInfoServiceRpcStub(channel);
  let failures = 0;
  const controller = new RpcController();
  try {
    print("call UserServiceRpc.Login(name=dwt, password=password)");
    const login = await userStub.Login({ name: bytes("dwt"), password: bytes("password") }, { controller });
    if (login.result?.errcode === 0) {
      print(`rpc call success: ${login.success}`);
    } else {
      print(`rpc call failed: ${text(login.result?.errmsg)}`);
      failures++;
    }

    controller.reset();
    print("call UserServiceRpc.Register(name=reg_name, password=reg_password)");
    const register = await userStub.Register({ name: bytes("reg_name"), password: bytes("reg_password") }, {
      controller,
    });
    if (register.result?.errcode === 0) {
      print(`register success: id = ${register.id}`);
    } else {
      print(`rpc call register failed: ${text(register.result?.errmsg)}`);
      failures++;
    }

    for (const [uid, type] of [[123456, 8], [654321, 5]] as const) {
      controller.reset();
      print(`call InfoServiceRpc.GetInfo(uid=${uid}, type=${type})`);
      const info = await infoStub.GetInfo({ uid, type }, { controller });
      print(`receive ${info.size} data =====`);
      for (const entry of info.info) print(`\t${text(entry)}`);
    }
  } catch (error) {
    print(`rpc call failed: ${controller.failed() ? controller.errorText() : (error as Error).message}`);
    failures++;
  } finally {
    await channel.close();
  }
  return failures;
}

if (defaultBackend().process.isMain(import.meta)) {
  const { process } = defaultBackend();
  const app = await RpcApplication.init(process.args(), { name: "caller" }).catch(exitOnFatalError);
  // A file the config names (tls_ca_file) is read when the channel opens.
  const failures = await runCaller(app, (line) => console.log(line)).catch(exitOnFatalError);
  await app.close();
  process.exit(failures === 0 ? 0 : 1);
}
