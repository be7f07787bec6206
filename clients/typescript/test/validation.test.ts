/** One test per validation rule of what the client receives; each fails if its check is removed. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { MessageTooLarge, ValidationError } from "../src/errors";
import { Assembler, encodeFrames } from "../src/frames";
import { checkParameters, checkTaskHeader, decodeTask } from "../src/messages";
import { logisticSpec } from "../src/logistic";
import { f32, Tensor } from "../src/tensor";
import { header, params } from "./helpers";

const spec = logisticSpec(3, 2);

function assemble(kind: string, groups: [string, Map<string, Tensor>][], maxBytes = 1 << 20) {
  const frames = encodeFrames(header(kind, [], 0), groups, 8);
  const asm = new Assembler(maxBytes, (h) => checkTaskHeader(h, spec));
  let done = null;
  for (const f of frames) done = "header" in f ? asm.feedHeader(f.header) : asm.feedData(f.data);
  assert.ok(done);
  return done;
}

test("a valid FitIns round-trips through frames and passes every check", () => {
  const task = decodeTask(assemble("FIT_INS", [["", params()]]), spec);
  assert.equal(task.kind, "FIT_INS");
  assert.deepEqual([...task.parameters.keys()], ["weight", "bias"]);
  assert.ok(Math.abs(task.parameters.get("weight")!.data.readFloatLE(4) - 0.2) < 1e-7);
});

test("oversized: a header declaring more than maxBytes is refused before anything is allocated", () => {
  const asm = new Assembler(16);
  const h = header("FIT_INS", [{ key: "", arrays: [{ name: "weight", dtype: "f4", shape: ["1000"] }] }], 4000);
  assert.throws(() => asm.feedHeader(h), MessageTooLarge);
  // its payload is skipped, not stored: the next message is read normally
  assert.equal(asm.feedData(Buffer.alloc(4000)), null);
  assert.equal(asm.busy, false);
});

test("oversized: a 64-bit payload_size beyond 2^53 is refused, not rounded", () => {
  const asm = new Assembler(1 << 20);
  const h = header("FIT_INS", [], 0);
  h.payload_size = "18446744073709551615";
  assert.throws(() => asm.feedHeader(h), /out of range/);
});

test("more data than the header declared is refused", () => {
  const asm = new Assembler(1 << 20);
  asm.feedHeader(header("FIT_INS", [{ key: "", arrays: [{ name: "bias", dtype: "f4", shape: ["2"] }] }], 8));
  assert.throws(() => asm.feedData(Buffer.alloc(12)), /more data than the header declared/);
});

test("a data frame without a header is refused", () => {
  assert.throws(() => new Assembler(100).feedData(Buffer.alloc(4)), /data frame without a header/);
});

test("payload_size must equal what the dtypes and shapes need", () => {
  const h = header("FIT_INS", [{ key: "", arrays: [{ name: "bias", dtype: "f4", shape: ["2"] }] }], 9);
  assert.throws(() => new Assembler(100).feedHeader(h), /payload_size does not match/);
});

test("duplicate array names are refused", () => {
  const a = { name: "bias", dtype: "f4", shape: ["2"] };
  assert.throws(() => new Assembler(100).feedHeader(header("FIT_INS", [{ key: "", arrays: [a, a] }], 16)), /duplicate array name/);
});

test("wrong shape: parameters whose shape differs from the model are refused (header and payload)", () => {
  const bad = new Map([["weight", f32([2, 2], [1, 2, 3, 4])], ["bias", f32([2], [0, 0])]]);
  assert.throws(() => checkParameters(bad, spec), /"weight": shape \[2,2\] != expected \[2,3\]/);
  const h = header("FIT_INS", [{ key: "", arrays: [{ name: "weight", dtype: "f4", shape: ["2", "2"] }, { name: "bias", dtype: "f4", shape: ["2"] }] }], 24);
  assert.throws(() => checkTaskHeader(h, spec), /shape \[2,2\] != expected \[2,3\]/);
});

test("wrong names: a missing or extra parameter is refused", () => {
  const renamed = new Map([["weights", f32([2, 3], [1, 2, 3, 4, 5, 6])], ["bias", f32([2], [0, 0])]]);
  assert.throws(() => checkParameters(renamed, spec), /wrong names/);
});

test("NaN or infinity: non-finite values are refused", () => {
  assert.throws(() => checkParameters(params([0, NaN, 0, 0, 0, 0]), spec), /non-finite value NaN at flat index 1/);
  assert.throws(() => checkParameters(params(undefined, [Infinity, 0]), spec), /non-finite value Infinity/);
});

test("wrong dtype: float64 parameters for a float32 model are refused", () => {
  const w = { dtype: "f8", shape: [2, 3], data: Buffer.alloc(48) };
  const bad = new Map([["weight", w], ["bias", f32([2], [0, 0])]]);
  assert.throws(() => checkParameters(bad, spec), /"weight": dtype f8 != expected f4/);
});

test("unsupported dtype codes are refused in the header", () => {
  const h = header("FIT_INS", [{ key: "", arrays: [{ name: "weight", dtype: "c8", shape: ["1"] }] }], 8);
  assert.throws(() => new Assembler(100).feedHeader(h), /unsupported dtype "c8"/);
});

test("negative or non-integer dimensions are refused", () => {
  const h = header("FIT_INS", [{ key: "", arrays: [{ name: "w", dtype: "f4", shape: ["-1"] }] }], 0);
  assert.throws(() => new Assembler(100).feedHeader(h), ValidationError);
});

test("a result kind sent as a task is refused", () => {
  const h = header("FIT_RES", [], 0);
  assert.throws(() => checkTaskHeader(h, spec), /expected a task/);
});

test("extras this client does not implement are refused; the ledger receipt is accepted", () => {
  const mask = new Map([["m", { dtype: "i8", shape: [1], data: Buffer.alloc(8) }]]);
  assert.throws(() => decodeTask(assemble("FIT_INS", [["", params()], ["scaffold_c", mask]]), spec), /does not implement/);
  const receipt = new Map([["r", { dtype: "u1", shape: [3], data: Buffer.from([1, 2, 3]) }]]);
  const task = decodeTask(assemble("FIT_INS", [["", params()], ["ledger_receipt", receipt]]), spec);
  assert.equal(task.extras.size, 1);
});

test("config values the client uses are checked (a NaN learning rate is refused)", async () => {
  const { LogisticLearner } = await import("../src/learner");
  const learner = new LogisticLearner({ x: [new Float64Array([1, 2, 3])], y: new Int32Array([0]) }, null, 2, { lr: 0.1, epochs: 1, batchSize: 4, seed: 0 });
  assert.throws(() => learner.fit(params(), new Map([["lr", NaN]])), /config "lr"/);
  assert.throws(() => learner.fit(params(), new Map([["batch_size", 2.5]])), /config "batch_size"/);
});
