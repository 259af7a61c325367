/** The numbered steps of a restore, in order (fault injection fails any of them on purpose). */
export const RESTORE_STEPS = [
  'read-images',    // every image the task needs, validated
  'check-pid',      // the PID is free (waiting a bounded time for a dying task)
  'start-helper',   // the helper program, seized
  'clone',          // clone3 with set_tid: the task-to-be, with the dumped PID
  'unmap-helper',   // drop the helper's mappings, keep our scratch area
  'vdso',           // the running vDSO moved where the dumped one was
  'map-vmas',       // every mapping at its address
  'fill-memory',    // pages read by the task from pages-N.img
  'protect',        // final protections and madvise flags
  'files',          // descriptors, cwd, root, umask
  'task-state',     // signal handlers, timers, limits, mm fields ...
  'threads',        // the other threads, with their TIDs; per-thread state for all
  'registers',      // the rt_sigreturn frame
  'jump',           // rt_sigreturn: the task runs its own code again
  'finish',         // detach, pidfile
] as const;

export type RestoreStep = (typeof RESTORE_STEPS)[number];
