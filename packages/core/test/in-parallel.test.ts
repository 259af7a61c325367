// inParallel (src/util/in-parallel.ts): at most n at a time, and a failure surfaces only once
// every worker has stopped (callers close what the work uses right after).
import { inParallel } from '../src/util/in-parallel';

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('runs every item, never more than n at once', async () => {
  let running = 0, most = 0;
  const done: number[] = [];
  await inParallel([1, 2, 3, 4, 5], 2, async (i) => {
    most = Math.max(most, ++running);
    await tick(5);
    done.push(i);
    running--;
  });
  expect(most).toBe(2);
  expect(done.sort()).toEqual([1, 2, 3, 4, 5]);
});

test('the first failure is thrown after the other worker has finished, and no new item starts', async () => {
  const events: string[] = [];
  await expect(inParallel(['fail', 'slow', 'never'], 2, async (x) => {
    if (x === 'fail') { events.push('fail'); throw new Error('boom'); }
    await tick(30);
    events.push(`${x} done`);
  })).rejects.toThrow('boom');
  expect(events).toEqual(['fail', 'slow done']);
});
