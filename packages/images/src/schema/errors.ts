/** The .proto files could not be found or parsed. */
export class SchemaLoadError extends Error {
  override readonly name = 'SchemaLoadError';
  constructor(
    message: string,
    /** Directory the loader used (or the last one it looked in). */
    readonly protoDir: string,
    override readonly cause?: unknown,
  ) {
    super(message);
  }
}

/** A message or enum name that no CRIU .proto file defines. */
export class UnknownSchemaTypeError extends Error {
  override readonly name = 'UnknownSchemaTypeError';
  constructor(
    /** The name that was asked for. */
    readonly typeName: string,
    /** 'message' or 'enum': what the caller looked for. */
    readonly kind: 'message' | 'enum',
  ) {
    super(`unknown CRIU protobuf ${kind} type '${typeName}'`);
  }
}
