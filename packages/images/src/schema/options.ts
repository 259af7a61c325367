import type protobuf from 'protobufjs';

/**
 * CRIU's custom field options (opts.proto, `(criu).*`). crit uses them to render
 * JSON: hex numbers, dotted IP addresses, flag names from a table, device numbers
 * as "major:minor" (dev, odev = old 16-bit encoding), dictionaries and conversions.
 */
export interface CriuFieldOptions {
  hex?: boolean;
  ipadd?: boolean;
  flags?: string;
  dev?: boolean;
  odev?: boolean;
  dict?: string;
  conv?: string;
}

const KEYS = ['hex', 'ipadd', 'flags', 'dev', 'odev', 'dict', 'conv'] as const;
const PREFIX = '(criu).';

/**
 * The `(criu).*` options declared on a field; {} when it has none.
 * protobufjs keeps them in field.options as flat keys, e.g. { '(criu).hex': true }.
 */
export function criuFieldOptions(field: protobuf.Field): CriuFieldOptions {
  const out: CriuFieldOptions = {};
  const options = field.options;
  if (!options) return out;
  for (const key of KEYS) {
    const value: unknown = options[PREFIX + key];
    if (value === undefined) continue;
    if (key === 'flags' || key === 'dict' || key === 'conv') {
      if (typeof value === 'string') out[key] = value;
    } else if (typeof value === 'boolean') {
      out[key] = value;
    }
  }
  return out;
}
