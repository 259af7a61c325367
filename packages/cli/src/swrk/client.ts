// The client side of CRIU's RPC protocol, as runc and go-criu speak it: make a SOCK_SEQPACKET
// socketpair, start `criu swrk 3` with the other end as fd 3, send criu_req, read criu_resp,
// answer NOTIFY round trips. Used by the tests (against criu-ts and the oracle CRIU alike).
import { spawn, type ChildProcess } from 'node:child_process';
import { decodeMessage, encodeMessage, type Msg } from '@criu/images';
import { sys } from '@criu/sys';
import { SeqpacketSocket } from './socket.js';
import { REQ } from './protocol.js';

export interface SwrkClientOptions {
  /** the criu executable and the words before `swrk` (e.g. [node, bin/criu.cjs]) */
  command: string;
  args?: string[];
  /** more descriptors for the child, as fd 4, 5, ... (runc's ExtraFiles after the socket) */
  extraFds?: number[];
  env?: NodeJS.ProcessEnv;
  /** bound on every wait for a response (default 120 s) */
  timeoutMs?: number;
}

export interface SwrkExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A response and the descriptors that came with it. */
export interface Response {
  resp: Msg;
  fds: number[];
}

export class SwrkClient {
  readonly child?: ChildProcess;
  stderr = '';
  stdout = '';
  private exitPromise: Promise<SwrkExit>;

  private constructor(
    readonly socket: SeqpacketSocket,
    child?: ChildProcess,
  ) {
    this.child = child;
    child?.stderr?.on('data', (d: Buffer) => (this.stderr += d.toString()));
    child?.stdout?.on('data', (d: Buffer) => (this.stdout += d.toString()));
    this.exitPromise = child
      ? new Promise((resolve) => {
          child.on('exit', (code, signal) => resolve({ code, signal }));
          // e.g. ENOENT: the executable is not there; no 'exit' follows
          child.on('error', (e) => {
            this.stderr += `${e.message}\n`;
            resolve({ code: null, signal: null });
          });
        })
      : Promise.reject(new Error('connected to a service: there is no swrk process of ours to wait for'));
    this.exitPromise.catch(() => undefined);
  }

  /** Connects to a `criu service` socket (the service starts a worker per connection). */
  static connect(file: string, timeoutMs = 120_000): SwrkClient {
    const s = SeqpacketSocket.connect(file);
    s.setRecvTimeout(timeoutMs);
    return new SwrkClient(s);
  }

  /** Starts `command ...args swrk 3` with our socketpair's server end as fd 3. */
  static start(o: SwrkClientOptions): SwrkClient {
    const [client, server] = SeqpacketSocket.pair(true);
    let child: ChildProcess;
    try {
      child = spawn(o.command, [...(o.args ?? []), 'swrk', '3'], {
        stdio: ['ignore', 'pipe', 'pipe', server.fd, ...(o.extraFds ?? [])],
        env: o.env ?? process.env,
      });
    } finally {
      server.close();
    }
    client.setRecvTimeout(o.timeoutMs ?? 120_000);
    return new SwrkClient(client, child);
  }

  /** Sends a criu_req (validated and encoded), or raw bytes as they are. */
  send(req: Msg | Buffer, fds: number[] = []): void {
    this.socket.send(Buffer.isBuffer(req) ? req : encodeMessage('criu_req', req), fds);
  }

  /** The next criu_resp; throws if the server closed the socket or sent something undecodable. */
  async receive(): Promise<Response> {
    const d = await this.socket.recv();
    if (d.closed) throw new Error(`swrk closed the socket without a response (stderr: ${this.stderr.trim()})`);
    return { resp: decodeMessage('criu_resp', d.data), fds: d.fds };
  }

  /** The next datagram, or null when the server closed the socket (EOF). */
  async receiveOrEof(): Promise<Response | null> {
    const d = await this.socket.recv();
    if (d.closed) return null;
    return { resp: decodeMessage('criu_resp', d.data), fds: d.fds };
  }

  /**
   * Sends `req` and returns the final response, answering every NOTIFY on the way with
   * `notify(script, pid)` (true = success; default true). `seen` gets each notification.
   */
  async call(req: Msg, notify?: (script: string, pid?: number) => boolean, seen?: Msg[]): Promise<Msg> {
    this.send(req);
    for (;;) {
      const { resp, fds } = await this.receive();
      for (const fd of fds) sys.close(fd); // e.g. orphan-pts-master's pty: not ours to keep
      if (resp.type !== REQ.NOTIFY) return resp;
      const n = (resp.notify ?? {}) as Msg;
      seen?.push(n);
      const ok = notify ? notify(n.script as string, n.pid as number | undefined) : true;
      this.send({ type: REQ.NOTIFY, notify_success: ok });
    }
  }

  /** Resolves when the swrk process has exited. */
  exited(): Promise<SwrkExit> {
    return this.exitPromise;
  }

  /** Closes our end; the server sees EOF. */
  close(): void {
    this.socket.close();
  }

  /** Kills the swrk process (tests: only a child we started). */
  kill(): void {
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}
