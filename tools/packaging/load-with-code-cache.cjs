'use strict';
/**
 * Runtime half of tools/packaging/code-cache.cjs (copied into each package's dist/ at build).
 *
 * Node compiles a function the first time it runs. For a dump that first run happens while the
 * tasks are frozen, so a fresh process paid ~10-15 ms of compilation as frozen time. The build
 * compiles every function of bundle.cjs ahead and stores V8's code cache next to it; this loader
 * hands that cache to V8. The cache is used only for the very bundle it was made from (sha256)
 * and by the V8 that made it; otherwise, or if V8 refuses it, the bundle is compiled as usual.
 */
const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');
const crypto = require('node:crypto');
const Module = require('node:module');

/**
 * What happened to each bundle's cache: 'accepted', 'rejected' (by V8), 'stale', 'absent',
 * 'disabled', or 'sandboxed' (loaded by plain require: see below).
 */
const status = {};

// Inside a vm context (jest runs every module in one), runInThisContext would evaluate the bundle
// in the outer realm, with other globals and without the host's module registry: there the
// bundle is left to the require() that loaded this file.
const sandboxed = vm.runInThisContext('globalThis') !== globalThis;

function cacheFor(file, source) {
  if (process.env.CRIU_TS_NO_CODE_CACHE) return ['disabled'];
  let meta;
  try {
    meta = JSON.parse(fs.readFileSync(`${file}.v8cache.json`, 'utf8'));
  } catch {
    return ['absent'];
  }
  if (meta.v8 !== process.versions.v8 || meta.arch !== process.arch) return ['stale'];
  if (meta.sha256 !== crypto.createHash('sha256').update(source).digest('hex')) return ['stale'];
  try {
    return ['accepted', fs.readFileSync(`${file}.v8cache`)];
  } catch {
    return ['absent'];
  }
}

/** Loads a CommonJS bundle as require() would, with its code cache; one instance per file. */
function load(file) {
  if (sandboxed) {
    status[file] = 'sandboxed';
    return require(file);
  }
  const known = Module._cache[file];
  if (known) return known.exports;
  const source = fs.readFileSync(file, 'utf8');
  const [state, cachedData] = cacheFor(file, source);
  const script = new vm.Script(Module.wrap(source), { filename: file, cachedData });
  status[file] = cachedData && script.cachedDataRejected ? 'rejected' : state;
  const mod = new Module(file, module);
  mod.filename = file;
  mod.paths = Module._nodeModulePaths(path.dirname(file));
  // Registered before it runs (as require() does), so a require() of the same file by path
  // elsewhere gets this instance, and cycles see the partial exports.
  Module._cache[file] = mod;
  try {
    script.runInThisContext().call(mod.exports, mod.exports, Module.createRequire(file), mod, file, path.dirname(file));
  } catch (e) {
    delete Module._cache[file];
    throw e;
  }
  mod.loaded = true;
  return mod.exports;
}

module.exports = { load, status };
