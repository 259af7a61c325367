/**
 * A real Node.js program, started as a user would (`node server.js`, detached): an HTTP server
 * on 127.0.0.1 (a port the kernel chose) and a setInterval timer. criu-ts dumps it (7 threads,
 * epolls, eventfds, pipes, the listening TCP socket), it is killed, criu-ts restores it, and then
 * a NEW HTTP request gets an answer and the timer keeps ticking. Two rounds: the restored
 * server is dumped and restored again.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { dump, restore } from '../src';
import { killVictim, readLog, startDetached, waitFor, type Victim } from './helpers/victims';
import { waitPidGone } from './helpers/oracle';

jest.setTimeout(120_000);
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'criu-ts-node-server-'));
let v: Victim | undefined;
afterAll(() => {
  killVictim(v);
  fs.rmSync(work, { recursive: true, force: true });
});

const SERVER = `
const http = require('http');
let ticks = 0;
setInterval(() => { ticks++; }, 50);
const server = http.createServer((req, res) => res.end('ticks ' + ticks + ' pid ' + process.pid + '\\n'));
server.listen(0, '127.0.0.1', () => console.log('READY ' + process.pid + ' ' + server.address().port));
`;

/** A new connection and request to the server; its answer. */
function get(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', agent: false, timeout: 20_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => resolve(body));
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 20 s')));
    req.on('error', reject);
  });
}

const ticksOf = (answer: string) => Number(/^ticks (\d+) /.exec(answer)?.[1] ?? NaN);

it('node server.js (http server + setInterval): dump, kill, restore, a new request is answered and the timer ticks on (2 rounds)', async () => {
  const script = path.join(work, 'server.js');
  fs.writeFileSync(script, SERVER);
  v = startDetached(process.execPath, [script]);
  const m = await waitFor('server READY', () => /READY (\d+) (\d+)/.exec(readLog(v!)) ?? undefined, 20_000);
  expect(Number(m[1])).toBe(v.pid);
  const port = Number(m[2]);
  let last = ticksOf(await get(port));
  expect(last).toBeGreaterThanOrEqual(0);
  for (let round = 1; round <= 2; round++) {
    const images = path.join(work, `images-${round}`);
    // The server closes each connection after answering (agent: false): wait until it has, so
    // only the listener is left (an open connection would be refused: it needs TCP_REPAIR).
    const sockets = () => fs.readdirSync(`/proc/${v!.pid}/fd`).filter((f) => { try { return fs.readlinkSync(`/proc/${v!.pid}/fd/${f}`).startsWith('socket:'); } catch { return false; } });
    await waitFor('only the listening socket left', () => sockets().length === 1, 10_000);
    await dump({ pid: v.pid, imagesDir: images });
    await waitPidGone(v.pid);
    await restore({ imagesDir: images, logFile: 'restore.log', logLevel: 4 });
    const answer = await get(port);
    expect(answer).toMatch(new RegExp(`^ticks \\d+ pid ${v.pid}\\n$`));
    const now = ticksOf(answer);
    expect(now).toBeGreaterThanOrEqual(last);
    // The timer still fires: the count grows past what the first answer after restore showed.
    let later = now;
    for (let i = 0; i < 200 && later <= now; i++) {
      await new Promise((r) => setTimeout(r, 50));
      later = ticksOf(await get(port));
    }
    expect(later).toBeGreaterThan(now);
    last = later;
  }
});
