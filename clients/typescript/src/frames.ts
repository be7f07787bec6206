/**
 * Messages as one Header frame followed by raw-byte data frames (fedloom.net.chunking, in TypeScript).
 *
 * The header lists array groups ("" = parameters, any other key an extras entry) with each array's name,
 * dtype and shape, and `payload_size`, the total bytes of the data frames that follow: the arrays' raw
 * little-endian bytes in header order, cut into chunks of any size. The Assembler checks a header
 * completely (size bound first, before allocating anything) and skips the payload of a header it
 * rejected, so the stream stays in sync.
 */
import { MessageTooLarge, ValidationError } from "./errors";
import { HeaderMsg, toSafeInt } from "./proto";
import { byteSize, Tensor, Tensors } from "./tensor";

/** Default data frame size of fedloom (2 MiB): well under gRPC's 4 MiB message limit. */
export const DEFAULT_CHUNK_BYTES = 2 * 1024 * 1024;

/** An array slot a header declares. */
export interface Slot {
  group: string;
  name: string;
  dtype: string;
  shape: number[];
  nbytes: number;
}

/** A fully received message: its header and its arrays by group key. */
export interface Assembled {
  header: HeaderMsg;
  groups: Map<string, Tensors>;
}

/** Check a header's array metadata (what fedloom.net.chunking._layout checks); one Slot per array. */
export function layout(header: HeaderMsg): Slot[] {
  const out: Slot[] = [];
  const keys = new Set<string>();
  for (const group of header.groups ?? []) {
    if (keys.has(group.key)) throw new ValidationError(`duplicate array group ${JSON.stringify(group.key)}`);
    keys.add(group.key);
    const names = new Set<string>();
    for (const meta of group.arrays ?? []) {
      if (names.has(meta.name)) throw new ValidationError(`duplicate array name ${JSON.stringify(meta.name)}`);
      names.add(meta.name);
      const what = `array ${JSON.stringify(meta.name)}`;
      const shape = (meta.shape ?? []).map((d) => toSafeInt(d, `${what} shape`, 0));
      out.push({ group: group.key, name: meta.name, dtype: meta.dtype, shape, nbytes: byteSize(meta.dtype, shape, what) });
    }
  }
  return out;
}

/**
 * Rebuild messages from frames, bounding their size and validating their structure.
 *
 * @param maxBytes largest payload accepted; a larger declared size throws MessageTooLarge before allocation.
 * @param checkHeader optional hook run on each header before its payload is read; throw to reject it.
 */
export class Assembler {
  private header: HeaderMsg | null = null;
  private slots: Slot[] = [];
  private buffer: Buffer = Buffer.alloc(0);
  private filled = 0;
  private skip = 0;

  constructor(readonly maxBytes: number, readonly checkHeader?: (h: HeaderMsg) => void) {}

  /** True while a payload is still arriving (or being skipped). */
  get busy(): boolean {
    return this.header !== null || this.skip > 0;
  }

  /** Consume a header frame; returns the message if it has no payload. */
  feedHeader(header: HeaderMsg): Assembled | null {
    if (this.busy) {
      this.reset();
      throw new ValidationError("a new message started before the previous payload was complete");
    }
    const size = toSafeInt(header.payload_size, "payload_size");
    if (size > this.maxBytes) {
      this.skip = size; // counted, never stored: the stream stays in sync for the next message
      throw new MessageTooLarge(`message declares ${size} bytes, more than the ${this.maxBytes} allowed`);
    }
    let slots: Slot[];
    try {
      slots = layout(header);
      const total = slots.reduce((a, s) => a + s.nbytes, 0);
      if (total !== size) throw new ValidationError("payload_size does not match the arrays' dtypes and shapes");
      this.checkHeader?.(header);
    } catch (err) {
      this.skip = size;
      throw err;
    }
    this.header = header;
    this.slots = slots;
    this.buffer = Buffer.alloc(size);
    this.filled = 0;
    return size === 0 ? this.finish() : null;
  }

  /** Consume a data frame; returns the message it completes, if any. */
  feedData(data: Buffer): Assembled | null {
    if (this.skip > 0) {
      if (data.length > this.skip) {
        this.skip = 0;
        throw new ValidationError("more data than the rejected message declared");
      }
      this.skip -= data.length;
      return null;
    }
    if (this.header === null) throw new ValidationError("data frame without a header");
    if (data.length > this.buffer.length - this.filled) {
      this.reset();
      throw new ValidationError("more data than the header declared");
    }
    data.copy(this.buffer, this.filled);
    this.filled += data.length;
    return this.filled === this.buffer.length ? this.finish() : null;
  }

  private finish(): Assembled {
    const header = this.header as HeaderMsg;
    const groups = new Map<string, Tensors>();
    for (const g of header.groups ?? []) groups.set(g.key, new Map());
    let pos = 0;
    for (const s of this.slots) {
      const data = Buffer.from(this.buffer.subarray(pos, pos + s.nbytes)); // own copy per array
      (groups.get(s.group) as Tensors).set(s.name, { dtype: s.dtype, shape: s.shape, data });
      pos += s.nbytes;
    }
    this.reset();
    return { header, groups };
  }

  private reset(): void {
    this.header = null;
    this.slots = [];
    this.buffer = Buffer.alloc(0);
    this.filled = 0;
  }
}

/** A header frame then data frames: fills `header.groups` and `header.payload_size` from `groups`. */
export function encodeFrames(
  header: HeaderMsg,
  groups: [string, Tensors][],
  chunkBytes = DEFAULT_CHUNK_BYTES,
): ({ header: HeaderMsg } | { data: Buffer })[] {
  if (!(chunkBytes >= 1)) throw new Error("chunkBytes must be >= 1");
  const parts: Buffer[] = [];
  header.groups = groups.map(([key, tensors]) => ({
    key,
    arrays: [...tensors].map(([name, t]: [string, Tensor]) => {
      const n = byteSize(t.dtype, t.shape, `array ${JSON.stringify(name)}`);
      if (t.data.length !== n) throw new ValidationError(`array ${JSON.stringify(name)}: ${t.data.length} bytes for shape [${t.shape}] ${t.dtype}`);
      parts.push(t.data);
      return { name, dtype: t.dtype, shape: t.shape.map(String) };
    }),
  }));
  const payload = Buffer.concat(parts);
  header.payload_size = String(payload.length);
  const frames: ({ header: HeaderMsg } | { data: Buffer })[] = [{ header }];
  for (let pos = 0; pos < payload.length; pos += chunkBytes) frames.push({ data: payload.subarray(pos, pos + chunkBytes) });
  return frames;
}
