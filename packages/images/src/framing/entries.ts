// Entries of an image: one record plus whatever raw payload follows it.
import type { Msg } from '../codec/message-codec.js';

/** Raw bytes that follow a record in the image. `data` is absent when payloads are skipped. */
export interface PayloadBytes {
  /** File offset of the first payload byte. */
  offset: number;
  length: number;
  data?: Buffer;
}

export type EntryExtra =
  /** pipes-data / fifo-data / sk-queues / bpfmap-data / ipcns-shm / ghost-file data */
  | ({ kind: 'bytes' } & PayloadBytes)
  /** tcp-stream: receive then send queue */
  | { kind: 'tcp-queues'; inq: PayloadBytes; outq: PayloadBytes }
  /** ipcns-sem: one u16 per semaphore */
  | { kind: 'ipc-sem'; values: number[] }
  /** ipcns-msg: qnum framed ipc_msg records, each followed by its text */
  | { kind: 'ipc-msg'; messages: Array<{ message: Msg; data: PayloadBytes; /** bytes of the framed ipc_msg record body */ recordSize: number }> };

export interface ImageEntry {
  /** 0-based entry number in the image. */
  index: number;
  /** File offset of the record's u32 length prefix. */
  offset: number;
  /** protobuf message type of the record, e.g. 'pagemap_entry'. */
  type: string;
  /** The decoded record: keepCase names, 64-bit values as BigInt, enums as numbers, bytes as Buffer. */
  message: Msg;
  extra?: EntryExtra;
}

/** What a writer needs for an entry: the message and, where the layout has one, its payload. */
export interface EntryInput {
  type?: string;
  message: Msg;
  extra?: EntryExtraInput;
}

export type EntryExtraInput =
  | { kind: 'bytes'; data?: Uint8Array }
  | { kind: 'tcp-queues'; inq: { data?: Uint8Array }; outq: { data?: Uint8Array } }
  | { kind: 'ipc-sem'; values: number[] }
  | { kind: 'ipc-msg'; messages: Array<{ message: Msg; data: { data?: Uint8Array } }> };
