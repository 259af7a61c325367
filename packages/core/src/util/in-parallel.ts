/**
 * Runs `work` on every item, at most `n` at a time (each worker takes the next item). After the
 * first failure no new item is started; it is thrown only once every worker has stopped, so a
 * caller's cleanup (closing the descriptors the work uses) never runs under work still in flight.
 */
export async function inParallel<T>(items: readonly T[], n: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (next < items.length && !failed) {
      const item = items[next++];
      try {
        await work(item);
      } catch (error) {
        failed ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  if (failed) throw failed.error;
}
