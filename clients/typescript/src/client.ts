/**
 * The client runtime: dial the server, say Hello, answer tasks with a local model, heartbeat, reconnect.
 *
 * Mirrors fedloom.net.client.ClientRuntime: one bidirectional `Connect` stream per connection; TLS with the
 * deployment CA (and a client certificate for mutual TLS), the token as `authorization: Bearer` metadata;
 * UNAUTHENTICATED / PERMISSION_DENIED / FAILED_PRECONDITION end the client at once, any other failure is
 * retried with exponential backoff and jitter.
 */
import * as grpc from "@grpc/grpc-js";
import { AuthError, ConfigError, MessageTooLarge, ValidationError } from "./errors";
import { Assembled, Assembler, DEFAULT_CHUNK_BYTES } from "./frames";
import { checkTaskHeader, Config, decodeTask, encodeError, encodeEvaluateRes, encodeFitRes, Scalar, Spec, Task } from "./messages";
import { fedloomService, HeaderMsg, PROTOCOL_VERSION, ServerMessage } from "./proto";
import { Tensors } from "./tensor";

/** What runs the tasks: a model that can train and evaluate on local data. */
export interface Learner {
  /** The parameters every task must carry (names in order, dtypes, shapes). */
  spec: Spec;
  fit(parameters: Tensors, config: Config): { parameters: Tensors; numExamples: number; metrics: Record<string, Scalar> };
  evaluate(parameters: Tensors, config: Config): { loss: number; numExamples: number; metrics: Record<string, Scalar> };
}

export interface ClientOptions {
  server: string;
  /** PEM of the CA that signed the server certificate; null = plaintext (local experiments only, no token allowed). */
  caCert: Buffer | null;
  clientCert?: Buffer | null;
  clientKey?: Buffer | null;
  token?: string | null;
  name?: string | null;
  heartbeatS?: number;
  serverTimeoutS?: number;
  backoffInitialS?: number;
  backoffMaxS?: number;
  connectTimeoutS?: number;
  maxMessageBytes?: number;
  chunkBytes?: number;
  serverNameOverride?: string | null;
  log?: (line: string) => void;
}

/** Exit statuses shared with `fedloom client`: 3 refused credentials, 4 cannot talk as configured, 5 no server. */
export class ConnectFailed extends Error {
  constructor(message: string, readonly exitCode: number) {
    super(message);
    this.name = "ConnectFailed";
  }
}

const FATAL = new Set([grpc.status.UNAUTHENTICATED, grpc.status.PERMISSION_DENIED]);

export class ClientRuntime {
  readonly opts: Required<Omit<ClientOptions, "clientCert" | "clientKey" | "token" | "name" | "serverNameOverride" | "caCert">> & ClientOptions;
  identity: string | null = null;
  tasksDone = 0;
  /** The last global model received (the parameters of the last task). */
  lastGlobal: Tensors | null = null;
  private stopped = false;
  private current: grpc.ClientDuplexStream<unknown, ServerMessage> | null = null;

  constructor(readonly learner: Learner, options: ClientOptions) {
    if (options.token && options.caCert === null) {
      throw new ConfigError("refusing to send the token over a plaintext channel (no CA certificate): connect with TLS");
    }
    this.opts = {
      heartbeatS: 5, serverTimeoutS: 30, backoffInitialS: 0.5, backoffMaxS: 30, connectTimeoutS: 300,
      maxMessageBytes: 2 * 1024 ** 3, chunkBytes: DEFAULT_CHUNK_BYTES, log: (l) => process.stderr.write(`${new Date().toISOString()} ${l}\n`),
      ...options,
    };
  }

  stop(): void {
    this.stopped = true;
    this.current?.cancel();
  }

  /** Serve tasks until the server says goodbye (returns its reason); throws AuthError / ConnectFailed. */
  async run(): Promise<string> {
    let attempt = 0;
    let lastOk = Date.now();
    while (!this.stopped) {
      const { reason, welcomed, code, details } = await this.session();
      if (reason !== null) return reason;
      if (code !== undefined && FATAL.has(code)) throw new AuthError(`server refused this client: ${details}`, code);
      if (code === grpc.status.FAILED_PRECONDITION) throw new ConnectFailed(`server refused the session: ${details}`, 4);
      if (welcomed) {
        attempt = 0;
        lastOk = Date.now();
      } else if (this.opts.connectTimeoutS > 0 && Date.now() - lastOk > this.opts.connectTimeoutS * 1000) {
        throw new ConnectFailed(`no session with ${this.opts.server} for ${this.opts.connectTimeoutS}s (last: ${details}); ` +
          "check the address, the CA certificate and that `fedloom server` runs there", 5);
      }
      const d = Math.min(this.opts.backoffMaxS, this.opts.backoffInitialS * 2 ** Math.min(attempt, 30));
      const delay = d / 2 + (Math.random() * d) / 2;
      attempt++;
      this.opts.log(`connection ended (${details}); reconnecting in ${delay.toFixed(1)}s`);
      await new Promise((r) => setTimeout(r, delay * 1000));
    }
    return "stopped";
  }

  private channel(): grpc.Client {
    const o = this.opts;
    const limit = o.chunkBytes + (1 << 20);
    const options: grpc.ChannelOptions = {
      "grpc.max_receive_message_length": Math.max(limit, (2 << 20) + (1 << 20)),
      "grpc.max_send_message_length": limit,
      "grpc.keepalive_time_ms": 10_000,
      "grpc.keepalive_timeout_ms": 10_000,
    };
    if (o.serverNameOverride) {
      options["grpc.ssl_target_name_override"] = o.serverNameOverride;
      options["grpc.default_authority"] = o.serverNameOverride;
    }
    const creds = o.caCert === null
      ? grpc.credentials.createInsecure()
      : grpc.credentials.createSsl(o.caCert, o.clientKey ?? null, o.clientCert ?? null);
    const Service = fedloomService();
    return new Service(o.server, creds, options);
  }

  /** One connection: resolves with the goodbye reason (or null) and how it ended. */
  private session(): Promise<{ reason: string | null; welcomed: boolean; code?: number; details: string }> {
    const o = this.opts;
    const client = this.channel();
    const md = new grpc.Metadata();
    if (o.token) md.set("authorization", `Bearer ${o.token.trim()}`);
    if (o.name) md.set("x-fedloom-client", o.name);
    const call = (client as unknown as { Connect(md: grpc.Metadata): grpc.ClientDuplexStream<unknown, ServerMessage> }).Connect(md);
    this.current = call;
    const assembler = new Assembler(o.maxMessageBytes, (h) => checkTaskHeader(h, this.learner.spec));
    let welcomed = false;
    let lastHeard = Date.now();
    return new Promise((resolve) => {
      let done = false;
      const finish = (r: { reason: string | null; welcomed: boolean; code?: number; details: string }) => {
        if (done) return;
        done = true;
        clearInterval(timer);
        this.current = null;
        try { call.end(); } catch { /* already closed */ }
        call.cancel();
        client.close();
        resolve(r);
      };
      const timer = setInterval(() => {
        if (Date.now() - lastHeard > o.serverTimeoutS * 1000) {
          o.log(`server silent for ${o.serverTimeoutS}s; reconnecting`);
          finish({ reason: null, welcomed, details: "server silent" });
          return;
        }
        call.write({ heartbeat: { time: Date.now() / 1000 } });
      }, o.heartbeatS * 1000);
      call.write({ hello: { protocol_version: PROTOCOL_VERSION } });
      call.on("data", (msg: ServerMessage) => {
        lastHeard = Date.now();
        if (msg.msg === "welcome" && msg.welcome) {
          welcomed = true;
          this.identity = msg.welcome.client_id;
          o.log(`connected to ${o.server} as ${this.identity}`);
        } else if (msg.msg === "bye" && msg.bye) {
          o.log(`server said goodbye: ${msg.bye.reason}`);
          finish({ reason: msg.bye.reason, welcomed, details: "bye" });
        } else if (msg.msg === "frame" && msg.frame) {
          this.onFrame(msg.frame, assembler, call);
          lastHeard = Date.now(); // time spent training is not the server's silence
        }
      });
      call.on("error", (err: grpc.ServiceError) => {
        if (!welcomed || !FATAL.has(err.code)) o.log(`connection to ${o.server} lost: ${grpc.status[err.code]} ${err.details}`);
        finish({ reason: null, welcomed, code: err.code, details: `${grpc.status[err.code]}: ${err.details}` });
      });
      call.on("end", () => finish({ reason: null, welcomed, details: "stream ended" }));
    });
  }

  private onFrame(frame: NonNullable<ServerMessage["frame"]>, assembler: Assembler, call: grpc.ClientDuplexStream<unknown, ServerMessage>): void {
    const header: HeaderMsg | undefined = frame.body === "header" ? frame.header : undefined;
    let done: Assembled | null;
    try {
      if (header) done = assembler.feedHeader(header);
      else if (frame.body === "data" && frame.data) done = assembler.feedData(frame.data);
      else throw new ValidationError("empty frame");
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      this.opts.log(`refused a task${err instanceof MessageTooLarge ? " (too large)" : ""}: ${err.message}`);
      if (header?.task_id) this.send(call, encodeError(header.task_id, `refused: ${err.message}`));
      return;
    }
    if (done === null) return;
    const taskId = done.header.task_id;
    let task: Task;
    try {
      task = decodeTask(done, this.learner.spec);
    } catch (err) {
      this.opts.log(`refused task ${taskId.slice(0, 8)}: ${(err as Error).message}`);
      this.send(call, encodeError(taskId, `refused: ${(err as Error).message}`));
      return;
    }
    this.lastGlobal = task.parameters;
    this.send(call, this.runTask(task));
    this.tasksDone++;
  }

  /** Run one task; a failure of the learner is reported to the server as an ERROR, not fatal. */
  runTask(task: Task): ReturnType<typeof encodeError> {
    const start = Date.now();
    const round = task.config.get("round") ?? "?";
    try {
      if (task.kind === "FIT_INS") {
        const res = this.learner.fit(task.parameters, task.config);
        this.opts.log(`fit round ${round} done in ${((Date.now() - start) / 1000).toFixed(2)}s`);
        return encodeFitRes(task.taskId, res.parameters, res.numExamples, res.metrics, this.opts.chunkBytes);
      }
      const res = this.learner.evaluate(task.parameters, task.config);
      this.opts.log(`evaluate round ${round} done`);
      return encodeEvaluateRes(task.taskId, res.loss, res.numExamples, res.metrics);
    } catch (err) {
      this.opts.log(`task failed: ${(err as Error).message}`);
      return encodeError(task.taskId, `${(err as Error).name}: ${(err as Error).message}`);
    }
  }

  private send(call: grpc.ClientDuplexStream<unknown, ServerMessage>, frames: ReturnType<typeof encodeError>): void {
    for (const f of frames) call.write({ frame: f });
  }
}
