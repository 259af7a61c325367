import { defineConfig } from 'tsup';
// Arch packages are optional dependencies (one per CPU); keep every @criu/* package external so
// each finds its own files (parasite ELF, protos) next to its own dist.
export default defineConfig({ entry: { bundle: 'src/index.ts' }, format: ['cjs'], dts: true, clean: true, shims: true, target: 'node18', external: [/^@criu\//] });
