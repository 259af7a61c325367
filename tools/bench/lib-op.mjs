// One timed library call in a fresh Node process, so its peak RSS is its own:
//   node lib-op.mjs dump PID DIR   |   node lib-op.mjs restore DIR
// Prints one JSON line: { ms, frozenTimeUs?, pid, maxRssKiB }.
import { dump, restore } from '../../packages/core/dist/index.js';

const [op, a, b] = process.argv.slice(2);
let out;
const t0 = process.hrtime.bigint();
if (op === 'dump') {
  const r = await dump({ pid: Number(a), imagesDir: b });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  out = { ms, frozenTimeUs: r.stats.frozenTimeUs, pid: r.pid };
} else if (op === 'restore') {
  const r = await restore({ imagesDir: a, detach: true });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  out = { ms, pid: r.pid };
} else {
  console.error('usage: lib-op.mjs dump PID DIR | restore DIR');
  process.exit(2);
}
out.maxRssKiB = process.resourceUsage().maxRSS;
process.stdout.write(JSON.stringify(out) + '\n');
