/**
 * Shared types of the dump pipeline. Records are plain objects shaped like CRIU's protobuf
 * messages (keepCase field names, 64-bit values as bigint, enums as numbers) and are encoded by
 * @criu/images.
 */
import type { Msg } from '@criu/images';
import type { Logger } from '../util/log.js';
import type { Parasite } from '../infect/parasite.js';
import type { FileRegistry } from './file-registry.js';
import type { MapsEntry } from '../proc/maps.js';

export type { Msg };

/** What a dump step gets to work with for one task (single-threaded for now). */
export interface TaskDumpContext {
  pid: number;
  imagesDir: string;
  pageSize: number;
  log: Logger;
  files: FileRegistry;
  parasite: Parasite;
  maps: MapsEntry[];
  /** Options that change what is accepted (e.g. ttys need --shell-job). */
  shellJob: boolean;
  /** Largest deleted file dumped as a ghost image (CRIU's --ghost-limit; default 1 MiB). */
  ghostLimit?: bigint;
  /** Descriptors criu-ts itself left in the task (the memory tracking uffd): not dumped. */
  ignoreFds?: ReadonlySet<number>;
  /** The task shares its descriptor table (CLONE_FILES) with this task, dumped before it: no fds here. */
  fdsDumpedWith?: number;
  /** The task is in a mount namespace of its own, made of these mounts: files get their mnt_id and must be on one of them. */
  mountIds?: ReadonlySet<number>;
}
