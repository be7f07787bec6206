/** The runtime against an in-process gRPC server on 127.0.0.1 speaking fedloom.proto (no other machine involved). */
import assert from "node:assert/strict";
import { test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { ClientRuntime, ConnectFailed, Learner } from "../src/client";
import { AuthError } from "../src/errors";
import { encodeFrames } from "../src/frames";
import { logisticSpec } from "../src/logistic";
import { fedloomService, HeaderMsg } from "../src/proto";
import { params } from "./helpers";

type Call = grpc.ServerDuplexStream<Record<string, unknown>, Record<string, unknown>>;

async function serve(handler: (call: Call) => void): Promise<{ port: number; stop: () => void }> {
  const server = new grpc.Server();
  server.addService(fedloomService().service, { Connect: handler });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  return { port, stop: () => server.forceShutdown() };
}

const learner: Learner = {
  spec: logisticSpec(3, 2),
  fit: (p) => ({ parameters: p, numExamples: 7, metrics: { train_loss: 0.25 } }),
  evaluate: () => ({ loss: 0.5, numExamples: 3, metrics: { accuracy: 1 } }),
};

function task(taskId: string, w: number[]): Record<string, unknown>[] {
  const h: HeaderMsg = { task_id: taskId, kind: "FIT_INS", groups: [], config: { round: { i: "1" }, lr: { d: 0.1 } }, num_examples: "0", loss: 0, error: "", payload_size: "0" };
  return encodeFrames(h, [["", params(w)]], 5).map((f) => ({ frame: f }));
}

function quiet(): (l: string) => void {
  return () => undefined;
}

test("hello, welcome, a task answered with FitRes, a bad task answered with ERROR, then goodbye", async () => {
  const seen: Record<string, unknown>[] = [];
  let claimed: unknown;
  const srv = await serve((call) => {
    claimed = call.metadata.get("x-fedloom-client")[0];
    let results = 0;
    call.on("data", (msg: Record<string, unknown>) => {
      seen.push(msg);
      const frame = msg.frame as { header?: HeaderMsg } | undefined;
      if (msg.hello) {
        call.write({ welcome: { client_id: "ts", heartbeat_s: 1 } });
        for (const m of task("good", [1, 2, 3, 4, 5, 6])) call.write(m);
        for (const m of task("nan", [1, NaN, 3, 4, 5, 6])) call.write(m);
      } else if (frame?.header && ++results === 2) {
        call.write({ bye: { reason: "done" } });
        call.end();
      }
    });
  });
  try {
    const rt = new ClientRuntime(learner, { server: `127.0.0.1:${srv.port}`, caCert: null, name: "ts", log: quiet() });
    assert.equal(await rt.run(), "done");
    assert.equal(rt.identity, "ts");
    assert.equal(claimed, "ts");
  } finally {
    srv.stop();
  }
  assert.deepEqual(seen[0], { hello: { protocol_version: 1 }, msg: "hello" });
  const headers = seen.map((m) => (m.frame as { header?: HeaderMsg } | undefined)?.header).filter((h): h is HeaderMsg => !!h);
  assert.equal(headers[0]!.kind, "FIT_RES");
  assert.equal(headers[0]!.task_id, "good");
  assert.equal(headers[0]!.num_examples, "7");
  assert.equal(headers[0]!.payload_size, "32");
  assert.deepEqual(headers[0]!.groups[0]!.arrays.map((a) => [a.name, a.dtype, a.shape]), [["weight", "f4", ["2", "3"]], ["bias", "f4", ["2"]]]);
  assert.equal(headers[1]!.kind, "ERROR");
  assert.equal(headers[1]!.task_id, "nan");
  assert.match(headers[1]!.error, /refused: "weight": non-finite value NaN/);
});

test("UNAUTHENTICATED ends the client with AuthError (no retry)", async () => {
  let attempts = 0;
  const srv = await serve((call) => {
    attempts++;
    call.emit("error", { code: grpc.status.UNAUTHENTICATED, details: "invalid token" });
  });
  try {
    const rt = new ClientRuntime(learner, { server: `127.0.0.1:${srv.port}`, caCert: null, backoffInitialS: 0.01, log: quiet() });
    await assert.rejects(rt.run(), (e: unknown) => e instanceof AuthError && /invalid token/.test(e.message));
    assert.equal(attempts, 1);
  } finally {
    srv.stop();
  }
});

test("a refused protocol version (FAILED_PRECONDITION) ends the client with exit status 4", async () => {
  const srv = await serve((call) => call.emit("error", { code: grpc.status.FAILED_PRECONDITION, details: "expected hello with protocol version 2" }));
  try {
    const rt = new ClientRuntime(learner, { server: `127.0.0.1:${srv.port}`, caCert: null, log: quiet() });
    await assert.rejects(rt.run(), (e: unknown) => e instanceof ConnectFailed && e.exitCode === 4);
  } finally {
    srv.stop();
  }
});

test("a token is never sent without TLS", () => {
  assert.throws(() => new ClientRuntime(learner, { server: "127.0.0.1:1", caCert: null, token: "secret" }), /plaintext/);
});
