/** Per test file: a scratch directory and the victims started, both gone after the file's tests. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { killVictim, type Victim } from './victims';

export function testWorkspace(name: string): { dir: string; started: Victim[] } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `criu-ts-${name}-`));
  const started: Victim[] = [];
  afterAll(() => {
    started.forEach(killVictim);
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { dir, started };
}
