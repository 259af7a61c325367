// The magic header at the start of an image: IMG_COMMON/IMG_SERVICE + type magic,
// inventory's single magic, or (old v1 images, accepted like crit does) a bare type magic.
import { formatError } from '../errors.js';
import { IMG_COMMON_MAGIC, IMG_SERVICE_MAGIC, magicByName, magicByValue, type ImageLayout, type MagicInfo } from '../magic/table.js';
import { imageFileKind } from '../magic/file-names.js';

export type HeaderFound = 'common' | 'service' | 'single';

export interface ImageHeader {
  magic: MagicInfo;
  layout: ImageLayout;
  /** Which first magic the file had ('single' = only the type magic, as inventory). */
  found: HeaderFound;
  /** Bytes taken by the header (4 or 8). */
  size: number;
}

const hex = (v: number): string => `0x${(v >>> 0).toString(16)}`;

/** Parse the first (up to) 8 bytes of an image. */
export function parseHeader(head: Uint8Array, file?: string): ImageHeader {
  const ctx = { file, offset: 0 };
  if (head.length < 4) throw formatError('TRUNCATED_HEADER', ctx, `image is ${head.length} bytes long, shorter than its 4-byte magic`);
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const first = view.getUint32(0, true);
  let value = first;
  let found: HeaderFound = 'single';
  let size = 4;
  if (first === IMG_COMMON_MAGIC || first === IMG_SERVICE_MAGIC) {
    found = first === IMG_COMMON_MAGIC ? 'common' : 'service';
    if (head.length < 8) throw formatError('TRUNCATED_HEADER', { file, offset: 4 }, `image ends after its ${found} magic, before the image-type magic`);
    value = view.getUint32(4, true);
    size = 8;
  }
  const magic = magicByValue(value);
  if (!magic) {
    const raw = file !== undefined && imageFileKind(file)?.magic === 'RAW';
    if (raw) throw formatError('RAW_IMAGE', { file, offset: size - 4 }, `raw image (no magic, e.g. pages-*.img): found ${hex(value)}; read it with PagesReader`);
    throw formatError('UNKNOWN_MAGIC', { file, offset: size - 4 }, `unknown magic ${hex(value)} (maybe an image with raw data, i.e. pages-*.img?)`);
  }
  if (!magic.layout) throw formatError('NO_HANDLER', { file, offset: size - 4 }, `no handler for images with magic ${magic.name} (${hex(value)})`);
  return { magic, layout: magic.layout, found, size };
}

/** The header bytes CRIU writes for an image of this magic. */
export function headerBytes(magicName: string, file?: string): Buffer {
  const magic = magicByName(magicName);
  if (!magic) throw formatError('UNKNOWN_MAGIC', { file }, `unknown magic name '${magicName}'`);
  if (!magic.layout) throw formatError('NO_HANDLER', { file }, `no handler for images with magic ${magicName}`);
  if (magic.header === 'inventory') {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(magic.value, 0);
    return b;
  }
  const b = Buffer.alloc(8);
  b.writeUInt32LE(magic.header === 'service' ? IMG_SERVICE_MAGIC : IMG_COMMON_MAGIC, 0);
  b.writeUInt32LE(magic.value, 4);
  return b;
}

export function requireMagic(magicName: string, file?: string): MagicInfo & { layout: ImageLayout } {
  const magic = magicByName(magicName);
  if (!magic) throw formatError('UNKNOWN_MAGIC', { file }, `unknown magic name '${String(magicName)}'`);
  if (!magic.layout) throw formatError('NO_HANDLER', { file }, `no handler for images with magic ${magicName}`);
  return magic as MagicInfo & { layout: ImageLayout };
}
