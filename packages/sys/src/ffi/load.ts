// Picks and lazily loads a backend. Nothing is required until a backend is first used, so a host
// without ffi-rs (ppc64le has no ffi-rs binary) never touches it.
import { createRequire } from 'node:module';
import { isMainThread } from 'node:worker_threads';
import { SysArgError, SysBackendError } from '../errors.js';
import { BACKEND_NAMES, type BackendName, type FfiBackend } from './backend.js';
import { createFfiRsBackend, type FfiRsModule } from './ffi-rs-backend.js';
import { createKoffiBackend, type KoffiModule } from './koffi-backend.js';

/** Environment variable that selects the default backend. */
export const BACKEND_ENV = 'CRIU_TS_FFI';

/** The backend an option or CRIU_TS_FFI asks for (koffi when neither does). */
export function resolveBackendName(option?: string): BackendName {
  const fromEnv = process.env[BACKEND_ENV];
  const wanted = option ?? (fromEnv === undefined || fromEnv === '' ? 'koffi' : fromEnv);
  if (!(BACKEND_NAMES as readonly string[]).includes(wanted)) {
    const source = option !== undefined ? 'backend' : BACKEND_ENV;
    throw new SysArgError(source, `unknown FFI backend '${wanted}' (expected ${BACKEND_NAMES.join(' or ')})`);
  }
  return wanted as BackendName;
}

const loaded = new Map<BackendName, FfiBackend>();
// __filename is native under CJS and shimmed by tsup in the ESM build.
const requireHere = createRequire(__filename);

/** The backend of that name, loaded on first use and shared afterwards. */
export function loadBackend(name: BackendName): FfiBackend {
  const have = loaded.get(name);
  if (have) return have;
  let backend: FfiBackend;
  if (name === 'ffi-rs') {
    if (!isMainThread) {
      // ffi-rs crashes the whole process when a worker thread that loaded it exits.
      throw new SysBackendError(name, 'refusing to load ffi-rs in a worker thread (the process crashes when that worker exits); use koffi there');
    }
    backend = create(name, () => createFfiRsBackend(requireModule<FfiRsModule>(name)));
  } else {
    backend = create(name, () => createKoffiBackend(requireModule<KoffiModule>(name)));
  }
  loaded.set(name, backend);
  return backend;
}

function create(name: BackendName, make: () => FfiBackend): FfiBackend {
  try {
    return make();
  } catch (e) {
    if (e instanceof SysBackendError) throw e;
    throw new SysBackendError(name, `cannot set up libc calls: ${(e as Error).message}`, { cause: e });
  }
}

function requireModule<T>(name: BackendName): T {
  try {
    return requireHere(name) as T;
  } catch (e) {
    throw new SysBackendError(name, `cannot load the ${name} package on ${process.platform}-${process.arch}: ${(e as Error).message}`, { cause: e });
  }
}
