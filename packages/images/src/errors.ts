/**
 * What went wrong with an image. Stable strings so callers can branch on them.
 */
export type ImageErrorCode =
  | 'TRUNCATED_HEADER'
  | 'UNKNOWN_MAGIC'
  | 'RAW_IMAGE'
  | 'NO_HANDLER'
  | 'TRUNCATED_RECORD'
  | 'RECORD_TOO_LONG'
  | 'PAYLOAD_TOO_LONG'
  | 'DECODE_FAILED'
  | 'MISSING_REQUIRED'
  | 'INVALID_FIELD'
  | 'BAD_JSON'
  | 'IO';

export interface ImageFormatErrorInfo {
  code: ImageErrorCode;
  /** File name (or '<buffer>' when decoding bytes without a name). */
  file?: string;
  /** 0-based index of the entry being read or written; undefined for header problems. */
  recordIndex?: number;
  /** Byte offset in the file where the problem was found. */
  offset?: number;
  /** Field path inside the record, e.g. 'tc.rlimits.rlimits[3].cur'. */
  field?: string;
  /** Human-readable explanation. */
  reason: string;
  cause?: unknown;
}

/**
 * Any problem decoding or encoding a CRIU image: bad framing, unknown magic,
 * protobuf decode failure, a missing required field or an out-of-range value.
 * Every failure of this package's image API is an ImageFormatError.
 */
export class ImageFormatError extends Error {
  override readonly name = 'ImageFormatError';
  readonly code: ImageErrorCode;
  readonly file: string;
  readonly recordIndex: number | undefined;
  readonly offset: number | undefined;
  readonly field: string | undefined;
  readonly reason: string;

  constructor(info: ImageFormatErrorInfo) {
    const file = info.file ?? '<buffer>';
    const where: string[] = [file];
    if (info.recordIndex !== undefined) where.push(`record ${info.recordIndex}`);
    if (info.offset !== undefined) where.push(`offset ${info.offset}`);
    if (info.field !== undefined) where.push(`field ${info.field}`);
    super(`${where.join(', ')}: ${info.reason}`, info.cause === undefined ? undefined : { cause: info.cause });
    this.code = info.code;
    this.file = file;
    this.recordIndex = info.recordIndex;
    this.offset = info.offset;
    this.field = info.field;
    this.reason = info.reason;
  }
}

/** Position context that low-level helpers attach to the errors they raise. */
export interface ErrorContext {
  file?: string;
  recordIndex?: number;
  offset?: number;
}

export function formatError(code: ImageErrorCode, ctx: ErrorContext, reason: string, field?: string, cause?: unknown): ImageFormatError {
  return new ImageFormatError({ code, file: ctx.file, recordIndex: ctx.recordIndex, offset: ctx.offset, field, reason, cause });
}
