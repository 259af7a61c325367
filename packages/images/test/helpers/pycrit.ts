// Batch access to the oracle's pycriu (crit's library) from tests: one python
// process per batch, since crit start-up dominates a single call.
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

const ORACLE = process.env.CRIU_ORACLE ? path.dirname(path.dirname(process.env.CRIU_ORACLE)) : '/var/tmp/criu-oracle';
const PYCRIU = path.join(ORACLE, 'usr/lib/python3/dist-packages');

export type PyTask = { op: 'decode'; file: string; nopl?: boolean } | { op: 'encode'; json: string } | { op: 'info'; file: string } | { op: 'dumps'; json: string; pretty?: boolean };
export interface PyResult {
  plain?: string;
  pretty?: string;
  nopl?: string;
  bytes?: string;
  info?: { magic: string; count: number };
  text?: string;
  error?: string;
}

export function pycriuAvailable(): boolean {
  return fs.existsSync(path.join(PYCRIU, 'pycriu/images/images.py'));
}

export function runPycrit(tasks: PyTask[]): PyResult[] {
  const python = process.env.CRIU_ORACLE_PYTHON || (fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3');
  const out = execFileSync(python, ['-s', path.join(__dirname, 'pycrit.py')], {
    input: JSON.stringify(tasks),
    env: { ...process.env, PYTHONPATH: PYCRIU, PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION: 'python' },
    maxBuffer: 512 * 1024 * 1024,
    encoding: 'utf8',
  });
  return JSON.parse(out) as PyResult[];
}

/** Python one-off: run `code` with json/base64 imported; the code prints the result. */
export function runPython(code: string, input = ''): string {
  return execFileSync('python3', ['-c', code], { input, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
}
