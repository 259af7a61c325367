export { readVdsoImage, VdsoElfError, type VdsoImage, type VdsoSymbol } from './elf.js';
export { buildVdsoProxy, readProxyMark, proxyMark, VdsoProxyError, PROXY_MARK_SIZE, type VdsoProxyCode, type ProxyPatch, type ProxyMark } from './proxy.js';
