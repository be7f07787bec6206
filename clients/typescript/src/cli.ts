#!/usr/bin/env node
/**
 * `node dist/src/cli.js --server HOST:PORT --credentials DIR --data train.csv --labels 0,1 --scaler scaler.json`
 *
 * Joins a fedloom deployment with a logistic-regression model trained in plain TypeScript on a local CSV.
 * Exit status: 0 when the server says goodbye, 2 bad arguments or data, 3 credentials refused, 4 cannot talk
 * to the server as configured (e.g. protocol version), 5 no server answered within --connect-timeout.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { ClientRuntime, ConnectFailed } from "./client";
import { fitScaler, parseCsv, parseScaler, standardize } from "./csv";
import { AuthError, ConfigError } from "./errors";
import { LogisticLearner } from "./learner";
import { writeSafetensors } from "./safetensors";

const USAGE = `usage: fedloom-ts-client --server HOST:PORT --data train.csv --labels A,B [options]

  --server HOST:PORT        the fedloom server
  --credentials DIR         a client folder from \`fedloom certs\` (ca.pem, token, client.pem, client.key)
  --ca FILE --cert FILE --key FILE --token-file FILE   the same files one by one (override --credentials)
  --insecure                plaintext, no TLS (local experiments only; no token is sent)
  --name NAME               the identity to claim (must match the credentials)
  --data FILE               training rows: CSV with a header, numeric features and the --target column
  --test-data FILE          rows for evaluation tasks (default: the training rows)
  --target COLUMN           label column (default: target)
  --labels A,B,...          the deployment's label set, in class-index order
  --scaler FILE             JSON {"mean": [...], "std": [...]}: the standardization every site shares;
                            "local": the training file's own statistics (as \`fedloom client --data\` does)
  --lr X --epochs N --batch-size N   defaults when the server's task config does not set lr/local_epochs/batch_size
  --seed N                  shuffling seed (default 0)
  --save-model FILE         write the last global model received as safetensors when the server says goodbye
  --heartbeat S --server-timeout S --connect-timeout S --backoff-max S --max-message-bytes N --server-name-override NAME
`;

function num(v: string | undefined, name: string, fallback: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new ConfigError(`--${name} must be a positive number, got ${JSON.stringify(v)}`);
  return n;
}

function readFile(p: string, what: string): Buffer {
  try {
    return fs.readFileSync(p);
  } catch {
    throw new ConfigError(`${what} ${p} cannot be read`);
  }
}

async function main(argv: string[]): Promise<number> {
  const { values: a } = parseArgs({
    args: argv,
    options: {
      server: { type: "string" }, credentials: { type: "string" }, ca: { type: "string" }, cert: { type: "string" },
      key: { type: "string" }, "token-file": { type: "string" }, insecure: { type: "boolean" }, name: { type: "string" },
      data: { type: "string" }, "test-data": { type: "string" }, target: { type: "string" }, labels: { type: "string" },
      scaler: { type: "string" }, lr: { type: "string" }, epochs: { type: "string" }, "batch-size": { type: "string" },
      seed: { type: "string" }, "save-model": { type: "string" }, heartbeat: { type: "string" },
      "server-timeout": { type: "string" }, "connect-timeout": { type: "string" }, "max-message-bytes": { type: "string" },
      "server-name-override": { type: "string" }, "backoff-max": { type: "string" }, help: { type: "boolean" },
    },
  });
  if (a.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (!a.server || !a.data || !a.labels) throw new ConfigError(`--server, --data and --labels are required\n${USAGE}`);
  const labels = a.labels.split(",").map((s) => s.trim());
  const target = a.target ?? "target";
  const train = parseCsv(readFile(a.data, "data file").toString("utf8"), target, labels, a.data);
  const test = a["test-data"] ? parseCsv(readFile(a["test-data"], "test data file").toString("utf8"), target, labels, a["test-data"]) : null;
  if (test && test.features.join(",") !== train.features.join(",")) throw new ConfigError("--test-data has other columns than --data");
  if (a.scaler) {
    const scaler = a.scaler === "local"
      ? fitScaler(train.x)
      : parseScaler(readFile(a.scaler, "scaler file").toString("utf8"), train.features.length, a.scaler);
    train.x = standardize(train.x, scaler);
    if (test) test.x = standardize(test.x, scaler);
  }
  const learner = new LogisticLearner(train, test, labels.length, {
    lr: num(a.lr, "lr", 0.1), epochs: num(a.epochs, "epochs", 1), batchSize: num(a["batch-size"], "batch-size", 16),
    seed: a.seed === undefined ? 0 : Math.trunc(num(a.seed, "seed", 0)),
  });
  const dir = a.credentials;
  const pick = (flag: string | undefined, file: string): string | undefined =>
    flag ?? (dir && fs.existsSync(path.join(dir, file)) ? path.join(dir, file) : undefined);
  const caPath = a.insecure ? undefined : pick(a.ca, "ca.pem");
  if (!a.insecure && !caPath) throw new ConfigError("TLS needs the deployment CA: --credentials DIR or --ca FILE (or --insecure for a local experiment)");
  const certPath = a.insecure ? undefined : pick(a.cert, "client.pem");
  const keyPath = a.insecure ? undefined : pick(a.key, "client.key");
  const tokenPath = a.insecure ? undefined : pick(a["token-file"], "token");
  const runtime = new ClientRuntime(learner, {
    server: a.server,
    caCert: caPath ? readFile(caPath, "CA certificate") : null,
    clientCert: certPath ? readFile(certPath, "client certificate") : null,
    clientKey: keyPath ? readFile(keyPath, "client key") : null,
    token: tokenPath ? readFile(tokenPath, "token file").toString("utf8").trim() : null,
    name: a.name ?? null,
    heartbeatS: num(a.heartbeat, "heartbeat", 5),
    serverTimeoutS: num(a["server-timeout"], "server-timeout", 30),
    connectTimeoutS: num(a["connect-timeout"], "connect-timeout", 300),
    backoffMaxS: num(a["backoff-max"], "backoff-max", 30),
    maxMessageBytes: num(a["max-message-bytes"], "max-message-bytes", 2 * 1024 ** 3),
    serverNameOverride: a["server-name-override"] ?? null,
  });
  process.on("SIGINT", () => runtime.stop());
  process.on("SIGTERM", () => runtime.stop());
  const reason = await runtime.run();
  if (a["save-model"] && runtime.lastGlobal) {
    fs.writeFileSync(a["save-model"], writeSafetensors(runtime.lastGlobal, { source: "fedloom-ts-client", tasks: String(runtime.tasksDone) }));
  }
  process.stderr.write(`done after ${runtime.tasksDone} task(s): ${reason}\n`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`error: ${err.message}\n`);
    process.exit(err instanceof AuthError ? 3 : err instanceof ConnectFailed ? err.exitCode : err instanceof ConfigError ? 2 : 1);
  },
);
