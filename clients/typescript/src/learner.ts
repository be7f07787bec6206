/** The Learner of the command-line client: a Logistic model on a site's standardized CSV rows. */
import { Learner } from "./client";
import { ValidationError } from "./errors";
import { Logistic, logisticSpec, rng } from "./logistic";
import { Config, Scalar, Spec } from "./messages";
import { Tensors } from "./tensor";

export interface LocalData {
  x: Float64Array[];
  y: Int32Array;
}

export interface LogisticLearnerOptions {
  lr: number;
  epochs: number;
  batchSize: number;
  seed: number;
}

/** A positive finite number from the task config (`key`), else `fallback`; a bad value is refused. */
function positive(config: Config, key: string, fallback: number, integer: boolean): number {
  const v = config.get(key);
  if (v === undefined) return fallback;
  const n = typeof v === "bigint" ? Number(v) : v;
  if (typeof n !== "number" || !Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n)) || n > 1e6) {
    throw new ValidationError(`config ${JSON.stringify(key)} = ${String(v)} is not a ${integer ? "positive integer" : "positive number"} <= 1e6`);
  }
  return n;
}

export class LogisticLearner implements Learner {
  readonly spec: Spec;
  readonly model: Logistic;
  private readonly random: () => number;

  constructor(readonly train: LocalData, readonly test: LocalData | null, numClasses: number, readonly opts: LogisticLearnerOptions) {
    const f = train.x[0]?.length ?? 0;
    if (f === 0) throw new ValidationError("no training rows or no feature columns");
    this.model = new Logistic(f, numClasses);
    this.spec = logisticSpec(f, numClasses);
    this.random = rng(opts.seed);
  }

  fit(parameters: Tensors, config: Config): { parameters: Tensors; numExamples: number; metrics: Record<string, Scalar> } {
    this.model.load(parameters);
    const loss = this.model.train(this.train.x, this.train.y, {
      lr: positive(config, "lr", this.opts.lr, false),
      epochs: positive(config, "local_epochs", this.opts.epochs, true),
      batchSize: positive(config, "batch_size", this.opts.batchSize, true),
      random: this.taskRandom(config),
    });
    return { parameters: this.model.parameters(), numExamples: this.train.x.length, metrics: { train_loss: loss } };
  }

  /** Shuffling for one task: seeded by the task's `seed` (as fedloom's Python clients are) when the server sends one. */
  private taskRandom(config: Config): () => number {
    const seed = config.get("seed");
    if (seed === undefined) return this.random;
    if ((typeof seed !== "number" || !Number.isInteger(seed)) && typeof seed !== "bigint") {
      throw new ValidationError(`config "seed" = ${String(seed)} is not an integer`);
    }
    return rng(Number(BigInt.asUintN(32, BigInt(seed))));
  }

  evaluate(parameters: Tensors, _config: Config): { loss: number; numExamples: number; metrics: Record<string, Scalar> } {
    this.model.load(parameters);
    const data = this.test && this.test.x.length ? this.test : this.train;
    const { loss, accuracy } = this.model.evaluate(data.x, data.y);
    return { loss, numExamples: data.x.length, metrics: { accuracy } };
  }
}
