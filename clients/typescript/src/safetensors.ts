/**
 * safetensors files (https://github.com/huggingface/safetensors): the format fedloom writes its models and
 * checkpoints in (model.safetensors). Layout: an 8-byte little-endian header length N, N bytes of JSON
 * `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}`, then the tensors'
 * bytes, little-endian, C order, offsets relative to the end of the header.
 *
 * The reader trusts nothing: header size and JSON, dtype names, shapes, offsets (exactly the tensor's
 * size, contiguous, non-overlapping, covering the whole data section) are all checked before any tensor is
 * returned.
 */
import { ValidationError } from "./errors";
import { byteSize, Tensors } from "./tensor";

/** Largest JSON header read (100 MB, the limit of the reference implementation). */
export const MAX_HEADER_BYTES = 100_000_000;

const TO_CODE: Record<string, string> = {
  BOOL: "b1", I8: "i1", I16: "i2", I32: "i4", I64: "i8", U8: "u1", U16: "u2", U32: "u4", U64: "u8", F16: "f2", F32: "f4", F64: "f8",
};
const FROM_CODE: Record<string, string> = Object.fromEntries(Object.entries(TO_CODE).map(([k, v]) => [v, k]));

export interface SafetensorsFile {
  tensors: Tensors;
  metadata: Record<string, string>;
}

/** Encode tensors (and optional string metadata) as a safetensors file. */
export function writeSafetensors(tensors: Tensors, metadata: Record<string, string> = {}): Buffer {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  const parts: Buffer[] = [];
  for (const [name, t] of tensors) {
    const dtype = FROM_CODE[t.dtype];
    if (dtype === undefined) throw new ValidationError(`${JSON.stringify(name)}: dtype ${t.dtype} has no safetensors name`);
    const n = byteSize(t.dtype, t.shape, name);
    if (n !== t.data.length) throw new ValidationError(`${JSON.stringify(name)}: ${t.data.length} bytes for shape [${t.shape}]`);
    header[name] = { dtype, shape: t.shape, data_offsets: [offset, offset + n] };
    parts.push(t.data);
    offset += n;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const head = Buffer.from(json, "utf8");
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(head.length));
  return Buffer.concat([len, head, ...parts]);
}

function isNonNegInt(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

/** Decode and validate a safetensors file; throws ValidationError naming what is wrong. */
export function readSafetensors(buf: Buffer): SafetensorsFile {
  if (buf.length < 8) throw new ValidationError(`safetensors: ${buf.length} bytes, too short for the 8-byte header length`);
  const big = buf.readBigUInt64LE(0);
  if (big > BigInt(MAX_HEADER_BYTES)) throw new ValidationError(`safetensors: header of ${big} bytes, more than ${MAX_HEADER_BYTES}`);
  const n = Number(big);
  if (8 + n > buf.length) throw new ValidationError(`safetensors: header declares ${n} bytes but the file has ${buf.length - 8} after the length`);
  const text = buf.subarray(8, 8 + n).toString("utf8");
  if (!text.startsWith("{")) throw new ValidationError("safetensors: the header is not a JSON object");
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (err) {
    throw new ValidationError(`safetensors: the header is not valid JSON (${(err as Error).message})`);
  }
  if (header === null || typeof header !== "object" || Array.isArray(header)) throw new ValidationError("safetensors: the header is not a JSON object");
  const data = buf.subarray(8 + n);
  const metadata: Record<string, string> = {};
  const entries: { name: string; dtype: string; shape: number[]; begin: number; end: number }[] = [];
  for (const [name, value] of Object.entries(header as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (value === null || typeof value !== "object" || Array.isArray(value)) throw new ValidationError("safetensors: __metadata__ must be an object");
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== "string") throw new ValidationError(`safetensors: __metadata__[${JSON.stringify(k)}] is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    const what = `safetensors tensor ${JSON.stringify(name)}`;
    if (value === null || typeof value !== "object") throw new ValidationError(`${what}: entry is not an object`);
    const e = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const code = typeof e.dtype === "string" ? TO_CODE[e.dtype] : undefined;
    if (code === undefined) throw new ValidationError(`${what}: unsupported dtype ${JSON.stringify(e.dtype)}`);
    if (!Array.isArray(e.shape) || !e.shape.every(isNonNegInt)) throw new ValidationError(`${what}: shape must be a list of integers >= 0`);
    const raw = e.data_offsets;
    if (!Array.isArray(raw) || raw.length !== 2 || !raw.every(isNonNegInt) || (raw[0] as number) > (raw[1] as number)) {
      throw new ValidationError(`${what}: data_offsets must be [begin, end] with 0 <= begin <= end`);
    }
    const off = raw as [number, number];
    const shape = e.shape as number[];
    const size = byteSize(code, shape, what);
    if (off[1] - off[0] !== size) throw new ValidationError(`${what}: data_offsets span ${off[1] - off[0]} bytes, the shape needs ${size}`);
    entries.push({ name, dtype: code, shape, begin: off[0], end: off[1] });
  }
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let pos = 0;
  for (const e of entries) {
    if (e.begin !== pos) throw new ValidationError(`safetensors tensor ${JSON.stringify(e.name)}: data_offsets overlap or leave a gap (begins at ${e.begin}, expected ${pos})`);
    pos = e.end;
  }
  if (pos !== data.length) throw new ValidationError(`safetensors: the tensors cover ${pos} bytes but the data section has ${data.length}`);
  const tensors: Tensors = new Map();
  for (const e of entries) tensors.set(e.name, { dtype: e.dtype, shape: e.shape, data: Buffer.from(data.subarray(e.begin, e.end)) });
  return { tensors, metadata };
}
