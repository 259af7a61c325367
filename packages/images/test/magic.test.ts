// The magic table against crit's own (pycriu magic.py and images.handlers), and CRIU's file names.
import { imageFileKind, imageFileName, IMAGE_FILES, layoutMessages, magicByName, magicByValue, MAGICS, messageType } from '../src/index';
import { runPython } from './helpers/pycrit';

const ORACLE = '/var/tmp/criu-oracle/usr/lib/python3/dist-packages';

const crit = JSON.parse(
  runPython(
    `import sys, json\nsys.path.insert(0, '${ORACLE}')\nimport os\nos.environ['PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION']='python'\nfrom pycriu.images import magic, images\nh = {k: (type(v).__name__, v.payload.DESCRIPTOR.name if getattr(v, 'payload', None) else None) for k, v in images.handlers.items()}\nprint(json.dumps({'magics': magic.by_name, 'handlers': h}))`,
  ),
) as { magics: Record<string, number>; handlers: Record<string, [string, string | null]> };

test('every crit magic name and value is in the table with the same value', () => {
  const notImageKinds = new Set(['CRTOOLS_IMAGES_V1_1', 'IMG_COMMON', 'IMG_SERVICE']);
  for (const [name, value] of Object.entries(crit.magics)) {
    if (notImageKinds.has(name)) continue;
    expect({ name, value: magicByName(name)?.value }).toEqual({ name, value });
    expect(magicByValue(value)?.name).toBe(name);
  }
  expect(MAGICS.length).toBe(Object.keys(crit.magics).length - notImageKinds.size);
});

test('the table marks exactly the magics crit has a handler for, with the same message', () => {
  for (const m of MAGICS) {
    const h = crit.handlers[m.name];
    expect({ name: m.name, crit: m.crit }).toEqual({ name: m.name, crit: h !== undefined });
    if (!h) continue;
    const layout = m.layout!;
    if (h[0] === 'pagemap_handler') expect(layout.kind).toBe('pagemap');
    else if (h[0] === 'ghost_file_handler') expect(layout.kind).toBe('ghost-file');
    else expect({ name: m.name, message: layout.kind === 'records' ? layout.message : undefined }).toEqual({ name: m.name, message: h[1] });
  }
});

test('every layout message exists in the schemas', () => {
  for (const m of MAGICS) if (m.layout) for (const t of layoutMessages(m.layout)) expect(messageType(t).name).toBe(t);
});

test('file names map to their magic; headers follow crit', () => {
  expect(imageFileKind('core-42.img')?.magic).toBe('CORE');
  expect(imageFileKind('/dump/pagemap-shmem-7.img')?.magic).toBe('PAGEMAP');
  expect(imageFileKind('pagemap-7.img')?.magic).toBe('PAGEMAP');
  expect(imageFileKind('pages-3.img')?.magic).toBe('RAW');
  expect(imageFileKind('ghost-file-1f.img')?.magic).toBe('GHOST_FILE');
  expect(imageFileKind('stats-dump')?.magic).toBe('STATS');
  expect(imageFileKind('inventory.img')?.magic).toBe('INVENTORY');
  expect(imageFileKind('tmpfs-dev-3.tar.gz.img')?.magic).toBe('RAW');
  expect(imageFileKind('unknown.txt')).toBeUndefined();
  expect(imageFileName('ghost-file-%x.img', 31)).toBe('ghost-file-1f.img');
  expect(imageFileName('core-%u.img', 42)).toBe('core-42.img');
  for (const f of IMAGE_FILES) if (f.magic !== 'RAW') expect(magicByName(f.magic)?.layout).toBeDefined();
  expect(magicByName('INVENTORY')!.header).toBe('inventory');
  expect(magicByName('STATS')!.header).toBe('service');
  expect(magicByName('IRMAP_CACHE')!.header).toBe('service');
  expect(magicByName('CORE')!.header).toBe('common');
});
