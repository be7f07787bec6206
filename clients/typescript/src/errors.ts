/** Errors the client raises for input it refuses (mirrors fedloom's ValidationError / MessageTooLarge). */

/** Something received (a message, a file, a value) breaks the protocol or this client's model. */
export class ValidationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ValidationError";
  }
}

/** A message declares (or sends) more bytes than this client accepts. */
export class MessageTooLarge extends ValidationError {
  constructor(message: string) {
    super(message);
    this.name = "MessageTooLarge";
  }
}

/** The server refused this client's credentials (retrying cannot help). Exit status 3, like `fedloom client`. */
export class AuthError extends Error {
  constructor(message: string, readonly code: number) {
    super(message);
    this.name = "AuthError";
  }
}

/** A configuration or command-line problem. Exit status 2. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}
