/**
 * fedloom.proto loaded at run time with @grpc/proto-loader, and the plain-object shapes of its messages.
 *
 * Loader options: field names as written in the .proto (keepCase), 64-bit integers as decimal strings
 * (longs: String, so nothing is silently rounded: see `toSafeInt`), enums as their names, defaults filled
 * in, and the name of the set member of each oneof in a virtual field (`msg`, `body`, `value`).
 */
import * as path from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { ValidationError } from "./errors";

/** The copy of src/fedloom/net/proto/fedloom.proto shipped with this package (a test checks they are equal). */
export const PROTO_PATH = path.resolve(__dirname, "..", "..", "proto", "fedloom.proto");

/** Version sent in Hello; the server refuses any other with FAILED_PRECONDITION (fedloom.net.server.PROTOCOL_VERSION). */
export const PROTOCOL_VERSION = 1;

export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
};

export type Kind = "KIND_UNSPECIFIED" | "FIT_INS" | "EVALUATE_INS" | "FIT_RES" | "EVALUATE_RES" | "ERROR";

export interface ScalarMsg {
  value?: "b" | "i" | "d" | "s";
  b?: boolean;
  i?: string | number;
  d?: number;
  s?: string;
}

export interface ArrayMetaMsg {
  name: string;
  dtype: string;
  shape: (string | number)[];
}

export interface TensorGroupMsg {
  key: string;
  arrays: ArrayMetaMsg[];
}

export interface HeaderMsg {
  task_id: string;
  kind: Kind | number;
  groups: TensorGroupMsg[];
  config: Record<string, ScalarMsg>;
  num_examples: string | number;
  loss: number;
  error: string;
  payload_size: string | number;
}

export interface FrameMsg {
  body?: "header" | "data";
  header?: HeaderMsg;
  data?: Buffer;
}

export interface ServerMessage {
  msg?: "welcome" | "heartbeat" | "frame" | "bye";
  welcome?: { client_id: string; heartbeat_s: number };
  heartbeat?: { time: number };
  frame?: FrameMsg;
  bye?: { reason: string };
}

export interface ClientMessage {
  hello?: { protocol_version: number };
  heartbeat?: { time: number };
  frame?: { header?: HeaderMsg; data?: Buffer };
}

/** A 64-bit integer field (decimal string or number) as a JS number; throws unless it is a safe integer in range. */
export function toSafeInt(value: string | number | undefined, what: string, min = 0): number {
  if (value === undefined) return 0;
  const text = String(value);
  if (!/^-?\d+$/.test(text)) throw new ValidationError(`${what}: ${JSON.stringify(text)} is not an integer`);
  const big = BigInt(text);
  if (big > BigInt(Number.MAX_SAFE_INTEGER) || big < BigInt(min)) {
    throw new ValidationError(`${what}: ${text} is out of range [${min}, ${Number.MAX_SAFE_INTEGER}]`);
  }
  return Number(big);
}

/** The gRPC client constructor of service fedloom.net.Fedloom. */
export function fedloomService(): grpc.ServiceClientConstructor {
  const def = protoLoader.loadSync(PROTO_PATH, LOADER_OPTIONS);
  const pkg = grpc.loadPackageDefinition(def) as unknown as { fedloom: { net: { Fedloom: grpc.ServiceClientConstructor } } };
  return pkg.fedloom.net.Fedloom;
}
