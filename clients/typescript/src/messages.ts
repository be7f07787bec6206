/**
 * Tasks and results (fedloom.net.messages, in TypeScript): FitIns / EvaluateIns in, FitRes / EvaluateRes /
 * ERROR out, each a Header (kind, task id, config or metrics, example count, loss) plus array groups.
 */
import { ValidationError } from "./errors";
import { Assembled, encodeFrames } from "./frames";
import { HeaderMsg, ScalarMsg, toSafeInt } from "./proto";
import { checkFinite, Tensor, Tensors } from "./tensor";

export type Scalar = boolean | number | string | bigint;
export type Config = Map<string, Scalar>;

/** The parameters a model expects: name -> dtype and shape, in wire order. */
export type Spec = Map<string, { dtype: string; shape: number[] }>;

export interface Task {
  taskId: string;
  kind: "FIT_INS" | "EVALUATE_INS";
  parameters: Tensors;
  config: Config;
  extras: Map<string, Tensors>;
}

/** Extras this client accepts and ignores: the signed ledger's receipt (this client does not keep receipts). */
export const IGNORED_EXTRAS = new Set(["ledger_receipt"]);

/** Largest ledger receipt accepted (bytes); real ones are a few hundred. */
export const MAX_RECEIPT_BYTES = 64 * 1024;

const KINDS = ["KIND_UNSPECIFIED", "FIT_INS", "EVALUATE_INS", "FIT_RES", "EVALUATE_RES", "ERROR"];

function kindName(kind: string | number): string {
  return typeof kind === "number" ? KINDS[kind] ?? `KIND_${kind}` : kind;
}

/** A protobuf `map<string, Scalar>` as a Map (keys sorted); integers become numbers when safe, else bigint. */
export function scalarsFromProto(source: Record<string, ScalarMsg> | undefined): Config {
  const out: Config = new Map();
  for (const key of Object.keys(source ?? {}).sort()) {
    const s = (source as Record<string, ScalarMsg>)[key] as ScalarMsg;
    switch (s.value) {
      case "b": out.set(key, Boolean(s.b)); break;
      case "d": out.set(key, Number(s.d)); break;
      case "s": out.set(key, String(s.s)); break;
      case "i": {
        const big = BigInt(String(s.i));
        out.set(key, big <= BigInt(Number.MAX_SAFE_INTEGER) && big >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(big) : big);
        break;
      }
      default: throw new ValidationError(`config ${JSON.stringify(key)}: empty scalar`);
    }
  }
  return out;
}

/** Metrics as a protobuf map: integers as `i`, other numbers as `d`. */
export function scalarsToProto(values: Record<string, Scalar>): Record<string, ScalarMsg> {
  const out: Record<string, ScalarMsg> = {};
  for (const [key, v] of Object.entries(values)) {
    if (typeof v === "boolean") out[key] = { b: v };
    else if (typeof v === "bigint") out[key] = { i: v.toString() };
    else if (typeof v === "string") out[key] = { s: v };
    else if (Number.isInteger(v)) out[key] = { i: String(v) };
    else out[key] = { d: v };
  }
  return out;
}

/**
 * Check a task's parameters against the model's spec: the same names in the same order, the same
 * dtypes and shapes, and only finite values.
 */
export function checkParameters(params: Tensors, spec: Spec): void {
  const names = [...params.keys()];
  const want = [...spec.keys()];
  if (names.length !== want.length || names.some((n, i) => n !== want[i])) {
    const missing = want.filter((n) => !params.has(n));
    const extra = names.filter((n) => !spec.has(n));
    throw new ValidationError(`parameters have wrong names: missing [${missing}], unexpected [${extra}] (expected [${want}] in that order)`);
  }
  for (const [name, t] of params) {
    const s = spec.get(name) as { dtype: string; shape: number[] };
    if (t.dtype !== s.dtype) throw new ValidationError(`${JSON.stringify(name)}: dtype ${t.dtype} != expected ${s.dtype}`);
    if (t.shape.length !== s.shape.length || t.shape.some((d, i) => d !== s.shape[i])) {
      throw new ValidationError(`${JSON.stringify(name)}: shape [${t.shape}] != expected [${s.shape}]`);
    }
    checkFinite(name, t);
  }
}

/** Turn an assembled message into a Task, refusing anything but a well-formed FitIns / EvaluateIns for `spec`. */
export function decodeTask(done: Assembled, spec: Spec): Task {
  const { header } = done;
  const kind = kindName(header.kind);
  if (kind !== "FIT_INS" && kind !== "EVALUATE_INS") throw new ValidationError(`expected a task (FIT_INS or EVALUATE_INS), got ${kind}`);
  const config = scalarsFromProto(header.config);
  const groups = new Map(done.groups);
  const parameters = groups.get("");
  if (parameters === undefined) throw new ValidationError("task has no parameters");
  groups.delete("");
  for (const [key, group] of groups) {
    if (kind === "EVALUATE_INS") throw new ValidationError("an evaluation task carries no extras");
    if (!IGNORED_EXTRAS.has(key)) {
      throw new ValidationError(`task carries extras ${JSON.stringify(key)} this client does not implement (it runs plain ` +
        "FedAvg-style training: no SCAFFOLD, secure aggregation, HE or compression); configure the server without them");
    }
    const bytes = [...group.values()].reduce((a, t: Tensor) => a + t.data.length, 0);
    if (bytes > MAX_RECEIPT_BYTES) throw new ValidationError(`extras ${JSON.stringify(key)} of ${bytes} bytes, more than ${MAX_RECEIPT_BYTES}`);
  }
  checkParameters(parameters, spec);
  return { taskId: header.task_id, kind, parameters, config, extras: groups };
}

/** Check a task header before its payload arrives (kind, and the parameters' declared names/dtypes/shapes). */
export function checkTaskHeader(header: HeaderMsg, spec: Spec): void {
  const kind = kindName(header.kind);
  if (kind !== "FIT_INS" && kind !== "EVALUATE_INS") throw new ValidationError(`expected a task (FIT_INS or EVALUATE_INS), got ${kind}`);
  const params = (header.groups ?? []).find((g) => g.key === "");
  if (params === undefined) throw new ValidationError("task has no parameters");
  const fake: Tensors = new Map();
  for (const a of params.arrays) {
    fake.set(a.name, { dtype: a.dtype, shape: a.shape.map((d) => toSafeInt(d, `array ${JSON.stringify(a.name)} shape`)), data: Buffer.alloc(0) });
  }
  const names = [...fake.keys()];
  const want = [...spec.keys()];
  if (names.length !== want.length || names.some((n, i) => n !== want[i])) {
    throw new ValidationError(`parameters have wrong names: got [${names}], expected [${want}]`);
  }
  for (const [name, t] of fake) {
    const s = spec.get(name) as { dtype: string; shape: number[] };
    if (t.dtype !== s.dtype) throw new ValidationError(`${JSON.stringify(name)}: dtype ${t.dtype} != expected ${s.dtype}`);
    if (t.shape.length !== s.shape.length || t.shape.some((d, i) => d !== s.shape[i])) {
      throw new ValidationError(`${JSON.stringify(name)}: shape [${t.shape}] != expected [${s.shape}]`);
    }
  }
}

function emptyHeader(taskId: string, kind: string): HeaderMsg {
  return { task_id: taskId, kind: kind as HeaderMsg["kind"], groups: [], config: {}, num_examples: "0", loss: 0, error: "", payload_size: "0" };
}

/** Frames of a fit result. */
export function encodeFitRes(taskId: string, parameters: Tensors, numExamples: number, metrics: Record<string, Scalar>, chunkBytes?: number) {
  const header = emptyHeader(taskId, "FIT_RES");
  header.num_examples = String(numExamples);
  header.config = scalarsToProto(metrics);
  return encodeFrames(header, [["", parameters]], chunkBytes);
}

/** Frames of an evaluation result (no arrays). */
export function encodeEvaluateRes(taskId: string, loss: number, numExamples: number, metrics: Record<string, Scalar>) {
  const header = emptyHeader(taskId, "EVALUATE_RES");
  header.num_examples = String(numExamples);
  header.loss = loss;
  header.config = scalarsToProto(metrics);
  return encodeFrames(header, []);
}

/** Frames reporting that a task failed here (the text is cut to 2000 characters, as fedloom does). */
export function encodeError(taskId: string, error: string) {
  const header = emptyHeader(taskId, "ERROR");
  header.error = error.slice(0, 2000);
  return encodeFrames(header, []);
}
