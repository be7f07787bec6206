import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";
import { ConfigError } from "../src/errors";
import { fitScaler, parseCsv, parseScaler, standardize } from "../src/csv";
import { Logistic, rng } from "../src/logistic";
import { scalarsFromProto, scalarsToProto } from "../src/messages";
import { PROTO_PATH } from "../src/proto";

test("the gradient step matches a numerical gradient of the mean cross-entropy", () => {
  const m = new Logistic(2, 3);
  m.w.set([0.1, -0.2, 0.3, 0.05, -0.1, 0.2]);
  m.b.set([0.01, 0.02, -0.03]);
  const x = [new Float64Array([1, 2]), new Float64Array([-1, 0.5])];
  const y = new Int32Array([2, 0]);
  const before = Float64Array.from(m.w);
  const lr = 1e-3;
  m.train(x, y, { lr, epochs: 1, batchSize: 2, random: rng(1) });
  const grad = (before[0]! - m.w[0]!) / lr;
  const eps = 1e-6;
  const probe = new Logistic(2, 3);
  probe.b.set([0.01, 0.02, -0.03]);
  probe.w.set(before);
  probe.w[0] = before[0]! + eps;
  const up = probe.evaluate(x, y).loss;
  probe.w[0] = before[0]! - eps;
  const down = probe.evaluate(x, y).loss;
  assert.ok(Math.abs(grad - (up - down) / (2 * eps)) < 1e-6, `${grad} vs ${(up - down) / (2 * eps)}`);
});

test("training separates two clusters", () => {
  const r = rng(3);
  const x: Float64Array[] = [];
  const y = new Int32Array(200);
  for (let i = 0; i < 200; i++) {
    y[i] = i % 2;
    x.push(new Float64Array([r() + (i % 2 ? 1.5 : -1.5), r()]));
  }
  const m = new Logistic(2, 2);
  const first = m.evaluate(x, y).loss;
  m.train(x, y, { lr: 0.1, epochs: 5, batchSize: 16, random: r });
  const after = m.evaluate(x, y);
  assert.ok(after.loss < first / 2);
  assert.equal(after.accuracy, 1);
});

test("CSV: labels map by the shared label set; bad cells name their row and column", () => {
  const t = parseCsv("a,b,target\n1,2,1\n3,4,0\n", "target", ["0", "1"]);
  assert.deepEqual([...t.y], [1, 0]);
  assert.deepEqual(t.features, ["a", "b"]);
  assert.throws(() => parseCsv("a,target\nx,1\n", "target", ["0", "1"], "s.csv"), /s.csv, row 2, column "a"/);
  assert.throws(() => parseCsv("a,target\n1,7\n", "target", ["0", "1"]), /label "7" is not one of/);
  assert.throws(() => parseCsv("a,target\n1,1\n", "label", ["0", "1"]), ConfigError);
});

test("the scaler standardizes with the shared statistics and checks its length", () => {
  const s = parseScaler('{"mean": [1, 2], "std": [2, 0]}', 2);
  assert.deepEqual([...standardize([new Float64Array([3, 5])], s)[0]!], [1, 3]);
  assert.throws(() => parseScaler('{"mean": [1], "std": [1]}', 2), /2 finite numbers/);
});

test("a local scaler uses the rows' own mean and population std (a constant column keeps std 1)", () => {
  const s = fitScaler([new Float64Array([1, 5]), new Float64Array([3, 5])]);
  assert.deepEqual(s, { mean: [2, 5], std: [1, 1] });
});

test("scalars: integers stay exact (bigint beyond 2^53), doubles and strings round-trip", () => {
  const back = scalarsFromProto({ big: { value: "i", i: "9007199254740993" }, lr: { value: "d", d: 0.5 }, s: { value: "s", s: "x" } });
  assert.equal(back.get("big"), 9007199254740993n);
  assert.equal(back.get("lr"), 0.5);
  assert.deepEqual(scalarsToProto({ n: 3, x: 0.5 }), { n: { i: "3" }, x: { d: 0.5 } });
  assert.throws(() => scalarsFromProto({ e: {} }), /empty scalar/);
});

test("the shipped fedloom.proto is the server's (when run inside the fedloom repository)", (t) => {
  const server = path.resolve(PROTO_PATH, "..", "..", "..", "..", "src", "fedloom", "net", "proto", "fedloom.proto");
  if (!fs.existsSync(server)) return t.skip("not inside the fedloom repository");
  assert.equal(fs.readFileSync(PROTO_PATH, "utf8"), fs.readFileSync(server, "utf8"));
});
