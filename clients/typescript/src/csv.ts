/** A strict reader for a site's CSV: a header row, numeric feature columns, and a label column. */
import { ConfigError } from "./errors";

export interface Table {
  features: string[];
  x: Float64Array[];
  /** Class index of each row, by position in `labels`. */
  y: Int32Array;
  labels: string[];
}

/** How fedloom writes a label: "1" for 1 and 1.0, the text itself otherwise. */
function labelName(cell: string): string {
  const v = Number(cell);
  return cell.trim() !== "" && Number.isFinite(v) && Number.isInteger(v) ? String(v) : cell;
}

/**
 * Parse `text` (comma-separated, no quoting) into features and class indices.
 *
 * @param target name of the label column.
 * @param labels the deployment's shared label set, in class-index order; every site must use the same list.
 */
export function parseCsv(text: string, target: string, labels: string[], source = "data"): Table {
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== "");
  if (lines.length < 2) throw new ConfigError(`${source}: needs a header row and at least one data row`);
  const header = (lines[0] as string).split(",").map((h) => h.trim());
  if (new Set(header).size !== header.length) throw new ConfigError(`${source}: duplicate column names in the header`);
  const t = header.indexOf(target);
  if (t < 0) throw new ConfigError(`${source}: no column ${JSON.stringify(target)} (columns: ${header.join(", ")}); pass --target`);
  if (labels.length < 2) throw new ConfigError("--labels needs at least two class names (the deployment's label set, in order)");
  const index = new Map(labels.map((l, i) => [l, i]));
  const features = header.filter((_, i) => i !== t);
  const x: Float64Array[] = [];
  const y = new Int32Array(lines.length - 1);
  for (let r = 1; r < lines.length; r++) {
    const cells = (lines[r] as string).split(",");
    if (cells.length !== header.length) throw new ConfigError(`${source}, row ${r + 1}: ${cells.length} cells, the header has ${header.length}`);
    const row = new Float64Array(features.length);
    let j = 0;
    for (let c = 0; c < cells.length; c++) {
      const cell = (cells[c] as string).trim();
      if (c === t) {
        const k = index.get(labelName(cell));
        if (k === undefined) throw new ConfigError(`${source}, row ${r + 1}: label ${JSON.stringify(cell)} is not one of --labels ${JSON.stringify(labels)}`);
        y[r - 1] = k;
        continue;
      }
      const v = Number(cell);
      if (cell === "" || !Number.isFinite(v)) throw new ConfigError(`${source}, row ${r + 1}, column ${JSON.stringify(header[c])}: ${JSON.stringify(cell)} is not a finite number`);
      row[j++] = v;
    }
    x.push(row);
  }
  return { features, x, y, labels };
}

/** Shared standardization statistics: JSON `{"mean": [...], "std": [...]}`, one entry per feature column. */
export interface Scaler {
  mean: number[];
  std: number[];
}

/** Parse and check a scaler file against the number of features. */
export function parseScaler(text: string, numFeatures: number, source = "scaler"): Scaler {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`${source}: not valid JSON (${(err as Error).message})`);
  }
  const s = raw as { mean?: unknown; std?: unknown };
  for (const key of ["mean", "std"] as const) {
    const v = s?.[key];
    if (!Array.isArray(v) || v.length !== numFeatures || !v.every((e) => typeof e === "number" && Number.isFinite(e))) {
      throw new ConfigError(`${source}: "${key}" must be a list of ${numFeatures} finite numbers (one per feature column)`);
    }
  }
  const std = (s.std as number[]).map((v) => (v === 0 ? 1 : v));
  if (std.some((v) => v < 0)) throw new ConfigError(`${source}: "std" must be >= 0`);
  return { mean: s.mean as number[], std };
}

/** (x - mean) / std per column, rounded to float32 as fedloom's float32 features are. */
export function standardize(x: Float64Array[], scaler: Scaler): Float64Array[] {
  return x.map((row) => row.map((v, j) => Math.fround((Math.fround(v) - (scaler.mean[j] as number)) / (scaler.std[j] as number))));
}

/** Statistics of the rows themselves (population std, 0 -> 1): what `fedloom client --data` does with a site's file. */
export function fitScaler(x: Float64Array[]): Scaler {
  const f = x[0]?.length ?? 0;
  const mean = new Array<number>(f).fill(0);
  const std = new Array<number>(f).fill(0);
  for (const row of x) row.forEach((v, j) => (mean[j] = (mean[j] as number) + Math.fround(v) / x.length));
  for (const row of x) row.forEach((v, j) => (std[j] = (std[j] as number) + (Math.fround(v) - (mean[j] as number)) ** 2 / x.length));
  return { mean, std: std.map((v) => (v === 0 ? 1 : Math.sqrt(v))) };
}
