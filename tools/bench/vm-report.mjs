// The ppc64le section of docs/benchmarks.md, from tools/bench/results-ppc64.json (written by
// tools/bench/vm-bench.sh inside the VM). Empty when there is no such file.
import * as fs from 'node:fs';
import * as path from 'node:path';

const median = (a) => {
  const s = [...a].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const fmtMs = (x) => (x >= 1000 ? `${(x / 1000).toFixed(2)} s` : `${x >= 100 ? x.toFixed(0) : x.toFixed(1)} ms`);

export function vmSection(benchDir) {
  const file = path.join(benchDir, 'results-ppc64.json');
  if (!fs.existsSync(file)) return '';
  const { machine: m, sizes, reps, results } = JSON.parse(fs.readFileSync(file, 'utf8'));
  const when = fs.statSync(file).mtime.toISOString().slice(0, 16).replace('T', ' ');
  const stat = (engine, mib, f) => {
    const xs = results.filter((r) => r.engine === engine && r.mib === mib).map(f);
    return { min: Math.min(...xs), med: median(xs) };
  };
  const rows = sizes.map((mib) => {
    const cell = (f) => {
      const c = stat('criu', mib, f);
      const l = stat('lib', mib, f);
      return [`${fmtMs(c.min)} / ${fmtMs(c.med)}`, `${fmtMs(l.min)} / ${fmtMs(l.med)}`, (c.med / l.med).toFixed(2)];
    };
    return [`${mib} MiB`, ...cell((r) => r.dump.ms), ...cell((r) => r.restore.ms), ...cell((r) => r.dump.frozenUs / 1000)];
  });
  const head = ['size', 'CRIU dump', 'criu-ts dump', 'dump speed-up', 'CRIU restore', 'criu-ts restore', 'restore speed-up', 'CRIU frozen', 'criu-ts frozen', 'CRIU / criu-ts frozen'];
  return `## ppc64le (QEMU TCG VM)

Made by \`tools/bench/vm-bench.sh\` (run by \`pnpm bench\` unless \`BENCH_NO_VM=1\`) on ${when} UTC: the
ppc64le VM of ../shared/ppc64-vm (${m.cpu}, ${m.cpus} vCPUs, ${m.memMiB} MiB, kernel ${m.kernel},
${m.pageSize / 1024} KiB pages, Node ${m.node}) runs tools/bench/vm/guest-bench.cjs: the same benchmem
round trips as above, ${reps} repetitions, images on the guest's tmpfs, criu-ts through the library
(\`dump()\`/\`restore()\` in the bench's own node process, after one untimed warm-up round trip of
each engine) against the guest's CRIU ${m.criu.replace(/^Version: /, '')} (Debian 12's criu; its wall time includes its process
start). Times are min / median; speed-ups are CRIU's median over ours (above 1: criu-ts is faster). Everything here runs
under full-system emulation, where Node's JIT-compiled code is 15-35x slower than on the host while
the kernel's page copies are slowed much less: the fixed per-dump work done in JavaScript weighs far
more than on real POWER hardware. Raw numbers: tools/bench/results-ppc64.json.

| ${head.join(' | ')} |
|${head.map(() => ' --- ').join('|')}|
${rows.map((r) => `| ${r.join(' | ')} |`).join('\n')}
`;
}
