import assert from "node:assert/strict";
import { test } from "node:test";
import { readSafetensors, writeSafetensors } from "../src/safetensors";
import { params } from "./helpers";

function file(header: object, data: Buffer): Buffer {
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, json, data]);
}

test("write then read gives the same tensors and metadata", () => {
  const buf = writeSafetensors(params(), { source: "test" });
  assert.equal(buf.readBigUInt64LE(0) % 8n, 0n); // header padded to 8 bytes
  const back = readSafetensors(buf);
  assert.deepEqual(back.metadata, { source: "test" });
  assert.deepEqual(back.tensors.get("weight")!.shape, [2, 3]);
  assert.ok(back.tensors.get("bias")!.data.equals(params().get("bias")!.data));
});

test("bad safetensors header: a header length beyond the file is refused", () => {
  const buf = Buffer.alloc(16);
  buf.writeBigUInt64LE(1000n);
  assert.throws(() => readSafetensors(buf), /header declares 1000 bytes/);
});

test("bad safetensors header: a huge header length is refused", () => {
  const buf = Buffer.alloc(16);
  buf.writeBigUInt64LE(2n ** 62n);
  assert.throws(() => readSafetensors(buf), /more than 100000000/);
});

test("bad safetensors header: JSON that does not parse is refused", () => {
  const json = Buffer.from("{not json");
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  assert.throws(() => readSafetensors(Buffer.concat([len, json])), /not valid JSON/);
});

test("bad safetensors header: offsets that do not match the shape are refused", () => {
  const h = { w: { dtype: "F32", shape: [2], data_offsets: [0, 4] } };
  assert.throws(() => readSafetensors(file(h, Buffer.alloc(4))), /span 4 bytes, the shape needs 8/);
});

test("bad safetensors header: overlapping tensors are refused", () => {
  const h = { a: { dtype: "F32", shape: [2], data_offsets: [0, 8] }, b: { dtype: "F32", shape: [2], data_offsets: [4, 12] } };
  assert.throws(() => readSafetensors(file(h, Buffer.alloc(12))), /overlap or leave a gap/);
});

test("bad safetensors header: trailing bytes no tensor covers are refused", () => {
  const h = { a: { dtype: "F32", shape: [1], data_offsets: [0, 4] } };
  assert.throws(() => readSafetensors(file(h, Buffer.alloc(8))), /cover 4 bytes but the data section has 8/);
});

test("bad safetensors header: unknown dtypes and bad shapes are refused", () => {
  assert.throws(() => readSafetensors(file({ a: { dtype: "C64", shape: [1], data_offsets: [0, 8] } }, Buffer.alloc(8))), /unsupported dtype/);
  assert.throws(() => readSafetensors(file({ a: { dtype: "F32", shape: [-1], data_offsets: [0, 0] } }, Buffer.alloc(0))), /shape must be/);
  assert.throws(() => readSafetensors(file({ __metadata__: { k: 1 } }, Buffer.alloc(0))), /is not a string/);
});
