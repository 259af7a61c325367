/** The .proto files could not be found or parsed (a broken install, not bad input). */
export class SchemaLoadError extends Error {
  override readonly name = 'SchemaLoadError';
  readonly code = 'SCHEMA_LOAD' as const;
  constructor(
    message: string,
    /** Directory the loader used ('' when none was found). */
    readonly protoDir: string,
    cause?: unknown,
  ) {
    super(message, cause === undefined ? undefined : { cause });
  }
}

/** A message or enum name that no CRIU .proto file defines. */
export class UnknownSchemaTypeError extends Error {
  override readonly name = 'UnknownSchemaTypeError';
  readonly code = 'UNKNOWN_SCHEMA_TYPE' as const;
  constructor(
    /** The name that was asked for. */
    readonly typeName: string,
    /** What the caller looked for. */
    readonly kind: 'message' | 'enum',
  ) {
    super(`unknown CRIU protobuf ${kind} type '${typeName}'`);
  }
}
