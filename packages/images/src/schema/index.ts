// CRIU's protobuf schemas (../../proto/*.proto) loaded into protobufjs.
export { criuSchemas, messageType, enumType, PROTO_DIR, protoFingerprint, protobufjs, resolvedTop } from './load.js';
export { criuFieldOptions, type CriuFieldOptions } from './options.js';
export { findProtoDir, listProtoFiles } from './proto-dir.js';
export { SchemaLoadError, UnknownSchemaTypeError } from './errors.js';
