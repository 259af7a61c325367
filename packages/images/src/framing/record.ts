// One protobuf record <-> plain object, with errors mapped to ImageFormatError
// carrying the file, record index and byte offset.
import { formatError, ImageFormatError, type ErrorContext } from '../errors.js';
import { planOf, type MessagePlan } from '../codec/plan.js';
import { CodecError, decodeMessagePlan, encodeMessagePlan, type Msg } from '../codec/message-codec.js';
import { checkMessage } from '../validate/zod-schema.js';

function plan(typeName: string, ctx: ErrorContext): MessagePlan {
  try {
    return planOf(typeName);
  } catch (err) {
    throw formatError('NO_HANDLER', ctx, `no schema for message ${typeName}: ${(err as Error).message}`, undefined, err);
  }
}

/**
 * Decode and validate one record body. `ctx.offset` is the file offset of the body,
 * so errors point at the byte where decoding failed.
 */
export function decodeRecord(typeName: string, body: Uint8Array, ctx: ErrorContext): Msg {
  const p = plan(typeName, ctx);
  let msg: Msg;
  try {
    msg = decodeMessagePlan(p, body);
  } catch (err) {
    if (err instanceof CodecError) {
      const at = ctx.offset === undefined ? err.at : ctx.offset + err.at;
      throw formatError(err.code, { ...ctx, offset: at }, `${typeName}: ${err.reason}`, err.field, err);
    }
    throw formatError('DECODE_FAILED', ctx, `${typeName}: ${(err as Error)?.message ?? String(err)}`, undefined, err);
  }
  const problem = checkMessage(p, msg);
  if (problem) throw formatError(problem.missing ? 'MISSING_REQUIRED' : 'INVALID_FIELD', ctx, `${typeName}: ${problem.field || 'record'}: ${problem.message}`, problem.field);
  return msg;
}

/** Validate then encode one message. Refuses missing required fields and out-of-range values. */
export function encodeRecord(typeName: string, msg: unknown, ctx: ErrorContext): Uint8Array {
  const p = plan(typeName, ctx);
  if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) throw formatError('INVALID_FIELD', ctx, `${typeName}: expected an object, got ${msg === null ? 'null' : Array.isArray(msg) ? 'an array' : typeof msg}`);
  const problem = checkMessage(p, msg);
  if (problem) throw formatError(problem.missing ? 'MISSING_REQUIRED' : 'INVALID_FIELD', ctx, `${typeName}: ${problem.field || 'record'}: ${problem.message}`, problem.field);
  try {
    return encodeMessagePlan(p, msg as Msg);
  } catch (err) {
    if (err instanceof ImageFormatError) throw err;
    throw formatError('INVALID_FIELD', ctx, `${typeName}: cannot encode: ${(err as Error)?.message ?? String(err)}`, undefined, err);
  }
}
