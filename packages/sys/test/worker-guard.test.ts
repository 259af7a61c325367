// ffi-rs crashes the whole process when a worker thread that loaded it exits, so @criu/sys refuses
// to load it off the main thread; koffi is fine there. Only Node's isMainThread flag is faked here
// (starting a real worker would need the TypeScript sources compiled).
jest.mock('node:worker_threads', () => ({ ...jest.requireActual('node:worker_threads'), isMainThread: false }));

import { createSys, loadBackend, SysBackendError } from '../src/index';

test('ffi-rs is refused in a worker thread, koffi still works there', () => {
  expect(() => loadBackend('ffi-rs')).toThrow(SysBackendError);
  expect(() => createSys({ backend: 'ffi-rs' }).getpid()).toThrow(/refusing to load ffi-rs in a worker thread/);
  expect(createSys({ backend: 'koffi' }).getpid()).toBe(process.pid);
});
