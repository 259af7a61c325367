// Errors the CLI reports as a one-line message and exit status 1 (never a stack trace).

/** The command line itself is wrong (unknown option, missing value, missing file argument). */
export class CliUsageError extends Error {
  override readonly name = 'CliUsageError';
  constructor(message: string) {
    super(message);
  }
}

/** A CRIU command this implementation does not have yet. */
export class NotImplementedError extends Error {
  override readonly name = 'NotImplementedError';
  constructor(readonly command: string) {
    super(`'${command}' is not implemented yet in criu-ts`);
  }
}

/** An input or output file could not be read or written. */
export class CliFileError extends Error {
  override readonly name = 'CliFileError';
  constructor(
    readonly file: string,
    readonly operation: 'read' | 'write',
    readonly reason: string,
  ) {
    super(`can't ${operation} ${file}: ${reason}`);
  }
}

/** Input that is not valid JSON (encode). */
export class CliJsonError extends Error {
  override readonly name = 'CliJsonError';
  constructor(
    readonly file: string,
    readonly reason: string,
  ) {
    super(`${file}: not a JSON image: ${reason}`);
  }
}
