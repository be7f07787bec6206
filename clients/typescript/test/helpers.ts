import { HeaderMsg } from "../src/proto";
import { f32, Tensors } from "../src/tensor";

export function header(kind: string, groups: HeaderMsg["groups"], payload: number, taskId = "t1"): HeaderMsg {
  return { task_id: taskId, kind: kind as HeaderMsg["kind"], groups, config: {}, num_examples: "0", loss: 0, error: "", payload_size: String(payload) };
}

/** A logistic model's parameters (weight [2, 3], bias [2]) as float32. */
export function params(w = [0.1, 0.2, 0.3, -0.1, -0.2, -0.3], b = [0, 0]): Tensors {
  return new Map([["weight", f32([2, 3], w)], ["bias", f32([2], b)]]);
}
