// @criu/images: CRIU's on-disk image format.
export { ImageFormatError, type ImageErrorCode, type ImageFormatErrorInfo } from './errors.js';

// Schemas (protobufjs reflection of CRIU's .proto files).
export * from './schema/index.js';
// Message plans (what the codec works from), and the build's table of them.
export { planOf, planSource, compilePlanTable, type MessagePlan, type FieldPlan, type FieldKind, type PlanTable } from './codec/plan.js';

// Magics and file names.
export {
  MAGICS,
  IMG_COMMON_MAGIC,
  IMG_SERVICE_MAGIC,
  RAW_IMAGE_MAGIC,
  magicByName,
  magicByValue,
  layoutMessages,
  type MagicInfo,
  type ImageLayout,
  type ExtraKind,
  type HeaderKind,
} from './magic/table.js';
export { IMAGE_FILES, imageFileKind, imageFileName, type ImageFileKind } from './magic/file-names.js';

// Typed records.
export type { Msg } from './codec/message-codec.js';
export type { ImageEntry, EntryExtra, PayloadBytes, EntryInput, EntryExtraInput } from './framing/entries.js';
export { parseHeader, headerBytes, type ImageHeader, type HeaderFound } from './framing/header.js';
export type { ParseOptions } from './framing/parser.js';
export { decodeMessage, encodeMessage, validateMessage } from './typed/messages.js';
export { decodeImageEntries, encodeImageEntries, type DecodedImage } from './typed/image-buffer.js';
export { messageSchema } from './validate/zod-schema.js';

// Streaming files.
export { ImageReader, readImageFile, type ImageReaderOptions } from './stream/image-reader.js';
export { ImageWriter, writeImageFile, type ImageWriterOptions } from './stream/image-writer.js';
export { PagesReader, PagesWriter, pageRuns, PE_PARENT, PE_LAZY, PE_PRESENT, type PageRun, type PagesWriterOptions } from './stream/pages.js';

// crit-compatible JSON.
export { decodeImage, decodeImageFile, encodeImage, encodeImageFile, imageInfo, imageInfoFile, humanReadableSize, type CritImage, type DecodeImageOptions } from './crit/image-json.js';
export { stringifyCritJson, parseCritJson, pythonFloatRepr, type CritJson } from './crit/python-json.js';
