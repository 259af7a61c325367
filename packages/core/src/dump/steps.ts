/**
 * The numbered steps of a dump, in order. Each is a place where the engine can fail; the
 * fault-injection hook (option `faultAt` or env CRIU_TS_FAULT_STEP) fails it on purpose so tests
 * can prove every failure leaves the task running as before.
 */
export const DUMP_STEPS = [
  'check-task',       // the PID exists, is not traced, is supported
  'check-files',      // every fd is of a kind we can dump (reads /proc only)
  'prepare-dir',      // images dir exists and is marked incomplete
  'freeze',           // PTRACE_SEIZE + interrupt
  'collect-proc',     // /proc state while frozen
  'infect',           // parasite in
  'task-state',       // sigactions, itimers, sigaltstack... from the parasite
  'files',            // fds, cwd/root, exe
  'vmas',             // mappings
  'memory',           // pages spliced into pages-N.img
  'registers',        // thread state through the arch
  'cure',             // parasite out, registers and mask back
  'write-images',     // the small images
  'finish',           // kill the task or let it run
] as const;

export type DumpStep = (typeof DUMP_STEPS)[number];
