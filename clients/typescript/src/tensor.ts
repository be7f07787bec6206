/**
 * Named arrays as fedloom sends them: numpy dtype codes without byte order (f4, i8, ...), C order, little-endian.
 */
import { ValidationError } from "./errors";

/** Byte size of every dtype fedloom's wire format supports (fedloom.core.parameters.SUPPORTED_DTYPES). */
export const DTYPE_SIZES: Readonly<Record<string, number>> = Object.freeze({
  b1: 1, i1: 1, i2: 2, i4: 4, i8: 8, u1: 1, u2: 2, u4: 4, u8: 8, f2: 2, f4: 4, f8: 8,
});

/** One array: raw little-endian bytes plus its dtype code and shape. */
export interface Tensor {
  dtype: string;
  shape: number[];
  data: Buffer;
}

/** Ordered name -> array mapping (insertion order is wire order). */
export type Tensors = Map<string, Tensor>;

/** Number of elements of `shape` (1 for a 0-d array); throws on a dimension that is not a safe integer >= 0. */
export function numel(shape: readonly number[], what = "array"): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) throw new ValidationError(`${what}: invalid dimension ${d} in shape [${shape}]`);
    n *= d;
    if (!Number.isSafeInteger(n)) throw new ValidationError(`${what}: shape [${shape}] is too large`);
  }
  return n;
}

/** Bytes an array of `dtype` and `shape` occupies; throws on an unsupported dtype. */
export function byteSize(dtype: string, shape: readonly number[], what = "array"): number {
  const size = DTYPE_SIZES[dtype];
  if (size === undefined) {
    throw new ValidationError(`${what}: unsupported dtype ${JSON.stringify(dtype)} (supported: ${Object.keys(DTYPE_SIZES).join(", ")})`);
  }
  const n = numel(shape, what) * size;
  if (!Number.isSafeInteger(n)) throw new ValidationError(`${what}: shape [${shape}] is too large`);
  return n;
}

/** A float32 tensor from values (copied, rounded to float32). */
export function f32(shape: number[], values: ArrayLike<number>): Tensor {
  const n = numel(shape);
  if (values.length !== n) throw new ValidationError(`expected ${n} values for shape [${shape}], got ${values.length}`);
  const data = Buffer.alloc(n * 4);
  for (let i = 0; i < n; i++) data.writeFloatLE(values[i] as number, i * 4);
  return { dtype: "f4", shape: [...shape], data };
}

/** The values of a floating-point tensor (f2, f4 or f8) as float64. */
export function floatValues(t: Tensor, what = "array"): Float64Array {
  const n = numel(t.shape, what);
  const out = new Float64Array(n);
  if (t.dtype === "f4") {
    for (let i = 0; i < n; i++) out[i] = t.data.readFloatLE(i * 4);
  } else if (t.dtype === "f8") {
    for (let i = 0; i < n; i++) out[i] = t.data.readDoubleLE(i * 8);
  } else if (t.dtype === "f2") {
    for (let i = 0; i < n; i++) out[i] = halfToFloat(t.data.readUInt16LE(i * 2));
  } else {
    throw new ValidationError(`${what}: dtype ${t.dtype} is not a floating-point dtype`);
  }
  return out;
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * 2 ** -14 * (frac / 1024);
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * 2 ** (exp - 15) * (1 + frac / 1024);
}

/** Throw unless every value of a floating-point tensor is finite (no NaN, no infinity). */
export function checkFinite(name: string, t: Tensor): void {
  if (!["f2", "f4", "f8"].includes(t.dtype)) return;
  const values = floatValues(t, name);
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i] as number)) {
      throw new ValidationError(`${JSON.stringify(name)}: non-finite value ${values[i]} at flat index ${i}`);
    }
  }
}
