/** Worker fixture: answers each message with the message and the runtime's name. */
import { defaultBackend } from "../default.ts";

const port = defaultBackend().workers.parentPort()!;
port.onMessage((message) => {
  if (message === "exit") {
    port.close();
    return;
  }
  port.postMessage({ echo: message, inWorker: true });
});
