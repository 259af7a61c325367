import { defineConfig } from 'tsup';
export default defineConfig({ entry: { bundle: 'src/index.ts' }, format: ['cjs'], dts: true, clean: true, shims: true, target: 'node18' });
