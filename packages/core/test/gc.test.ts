// collectYoungGarbage (src/util/gc.ts): the dump's scavenge before the freeze really empties
// V8's young generation.
import * as v8 from 'v8';
import { collectYoungGarbage } from '../src/util/gc';

const newSpaceUsed = () => v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')!.space_used_size;

test('a young-generation collection frees what the new space held', () => {
  let keep: unknown[] = [];
  for (let i = 0; i < 2000; i++) keep.push({ i, s: `garbage ${i}` });
  const before = newSpaceUsed();
  keep = [];
  collectYoungGarbage();
  const after = newSpaceUsed();
  expect(before).toBeGreaterThan(64 * 1024);
  // Survivors stay in the new space until their second scavenge: it shrinks, not to zero.
  expect(after).toBeLessThan(before / 2);
  expect(keep).toEqual([]);
});
