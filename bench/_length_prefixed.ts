/** Length-prefixed frames (a big-endian uint32 length, then the body) for the plain-socket baselines. */

/** `bodies` framed back to back in one array, for one write. */
export function frameAll(bodies: Uint8Array[]): Uint8Array {
  const bytes = new Uint8Array(bodies.reduce((sum, body) => sum + 4 + body.length, 0));
  const view = new DataView(bytes.buffer);
  let at = 0;
  for (const body of bodies) {
    view.setUint32(at, body.length);
    bytes.set(body, at + 4);
    at += 4 + body.length;
  }
  return bytes;
}

/** Collects reads and hands out the whole frames in them. */
export class FrameReader {
  #buf = new Uint8Array(256 * 1024);
  #view = new DataView(this.#buf.buffer);
  #filled = 0;

  /** Where the next read goes (grown when full). */
  space(): Uint8Array {
    if (this.#filled === this.#buf.length) {
      const bigger = new Uint8Array(this.#buf.length * 2);
      bigger.set(this.#buf);
      this.#buf = bigger;
      this.#view = new DataView(bigger.buffer);
    }
    return this.#buf.subarray(this.#filled);
  }

  /** Take `n` read bytes and call `onFrame` with each whole frame's body (valid during the call). */
  added(n: number, onFrame: (body: Uint8Array) => void): void {
    this.#filled += n;
    let offset = 0;
    while (this.#filled - offset >= 4 && this.#filled - offset >= 4 + this.#view.getUint32(offset)) {
      const length = this.#view.getUint32(offset);
      onFrame(this.#buf.subarray(offset + 4, offset + 4 + length));
      offset += 4 + length;
    }
    this.#buf.copyWithin(0, offset, this.#filled);
    this.#filled -= offset;
  }
}
