/** fedloom's TypeScript client: wire format, validation, safetensors, a logistic model and the runtime. */
export * from "./errors";
export * from "./tensor";
export * from "./proto";
export * from "./frames";
export * from "./messages";
export * from "./safetensors";
export * from "./csv";
export * from "./logistic";
export * from "./learner";
export * from "./client";
