// Single-message typed API (no framing): used for RPC messages and tests.
import type { Msg } from '../codec/message-codec.js';
import { decodeRecord, encodeRecord } from '../framing/record.js';
import { planOf } from '../codec/plan.js';
import { checkMessage } from '../validate/zod-schema.js';
import { formatError } from '../errors.js';

/** Decode one protobuf message of a CRIU type (e.g. 'criu_req'), validated. Throws ImageFormatError. */
export function decodeMessage(typeName: string, bytes: Uint8Array): Msg {
  return decodeRecord(typeName, bytes, { offset: 0 });
}

/** Validate then encode one message. Throws ImageFormatError naming the bad field. */
export function encodeMessage(typeName: string, message: unknown): Buffer {
  const out = encodeRecord(typeName, message, {});
  return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
}

/** Check a plain object against a message type; throws ImageFormatError on the first problem. */
export function validateMessage(typeName: string, message: unknown): void {
  const problem = checkMessage(planOf(typeName), message);
  if (problem) throw formatError(problem.missing ? 'MISSING_REQUIRED' : 'INVALID_FIELD', {}, `${typeName}: ${problem.field || 'record'}: ${problem.message}`, problem.field);
}
