/**
 * Multinomial logistic regression in plain TypeScript, parameter-compatible with fedloom's `logistic`
 * model (torch.nn.Linear(F, K): "weight" float32 [K, F] and "bias" float32 [K]) and trained with the same
 * loss (mean softmax cross-entropy over a minibatch) by minibatch gradient descent.
 */
import { Spec } from "./messages";
import { f32, floatValues, Tensors } from "./tensor";

/** The spec of a logistic model: the names, dtypes and shapes a task's parameters must have. */
export function logisticSpec(numFeatures: number, numClasses: number): Spec {
  return new Map([
    ["weight", { dtype: "f4", shape: [numClasses, numFeatures] }],
    ["bias", { dtype: "f4", shape: [numClasses] }],
  ]);
}

/** A small seeded PRNG (mulberry32) for shuffling. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface TrainOptions {
  lr: number;
  epochs: number;
  batchSize: number;
  random: () => number;
}

export class Logistic {
  readonly w: Float64Array; // [K * F], row-major like torch's weight
  readonly b: Float64Array; // [K]

  constructor(readonly numFeatures: number, readonly numClasses: number) {
    this.w = new Float64Array(numClasses * numFeatures);
    this.b = new Float64Array(numClasses);
  }

  /** Load "weight" and "bias" (already validated against `logisticSpec`). */
  load(params: Tensors): void {
    this.w.set(floatValues(params.get("weight")!, "weight"));
    this.b.set(floatValues(params.get("bias")!, "bias"));
  }

  /** The parameters as float32 tensors, in the wire order of `logisticSpec`. */
  parameters(): Tensors {
    return new Map([
      ["weight", f32([this.numClasses, this.numFeatures], this.w)],
      ["bias", f32([this.numClasses], this.b)],
    ]);
  }

  /** Softmax probabilities of one row (into `out`). */
  private probs(x: Float64Array, out: Float64Array): void {
    const { numFeatures: f, numClasses: k } = this;
    let max = -Infinity;
    for (let c = 0; c < k; c++) {
      let z = this.b[c] as number;
      for (let j = 0; j < f; j++) z += (this.w[c * f + j] as number) * (x[j] as number);
      out[c] = z;
      if (z > max) max = z;
    }
    let sum = 0;
    for (let c = 0; c < k; c++) {
      out[c] = Math.exp((out[c] as number) - max);
      sum += out[c] as number;
    }
    for (let c = 0; c < k; c++) out[c] = (out[c] as number) / sum;
  }

  /** Local training; returns the last epoch's mean loss (over examples). */
  train(x: Float64Array[], y: Int32Array, opt: TrainOptions): number {
    const { numFeatures: f, numClasses: k } = this;
    const n = x.length;
    const order = Array.from({ length: n }, (_, i) => i);
    const p = new Float64Array(k);
    const gw = new Float64Array(k * f);
    const gb = new Float64Array(k);
    let epochLoss = 0;
    for (let e = 0; e < opt.epochs; e++) {
      for (let i = n - 1; i > 0; i--) { // Fisher-Yates
        const j = Math.floor(opt.random() * (i + 1));
        [order[i], order[j]] = [order[j] as number, order[i] as number];
      }
      epochLoss = 0;
      for (let start = 0; start < n; start += opt.batchSize) {
        const batch = order.slice(start, start + opt.batchSize);
        gw.fill(0);
        gb.fill(0);
        for (const i of batch) {
          const xi = x[i] as Float64Array;
          const yi = y[i] as number;
          this.probs(xi, p);
          epochLoss -= Math.log(Math.max(p[yi] as number, 1e-300));
          for (let c = 0; c < k; c++) {
            const g = (p[c] as number) - (c === yi ? 1 : 0);
            gb[c] = (gb[c] as number) + g;
            for (let j = 0; j < f; j++) gw[c * f + j] = (gw[c * f + j] as number) + g * (xi[j] as number);
          }
        }
        const scale = opt.lr / batch.length; // gradient of the batch's mean loss
        for (let q = 0; q < gw.length; q++) this.w[q] = (this.w[q] as number) - scale * (gw[q] as number);
        for (let c = 0; c < k; c++) this.b[c] = (this.b[c] as number) - scale * (gb[c] as number);
      }
      epochLoss /= Math.max(n, 1);
    }
    return epochLoss;
  }

  /** Mean cross-entropy and accuracy on (x, y). */
  evaluate(x: Float64Array[], y: Int32Array): { loss: number; accuracy: number } {
    const p = new Float64Array(this.numClasses);
    let loss = 0;
    let correct = 0;
    x.forEach((xi, i) => {
      this.probs(xi, p);
      const yi = y[i] as number;
      loss -= Math.log(Math.max(p[yi] as number, 1e-300));
      let best = 0;
      for (let c = 1; c < this.numClasses; c++) if ((p[c] as number) > (p[best] as number)) best = c;
      if (best === yi) correct++;
    });
    const n = Math.max(x.length, 1);
    return { loss: loss / n, accuracy: correct / n };
  }
}
