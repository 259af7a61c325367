export * from './protocol.js';
export { PageServerClient } from './client.js';
export { startPageServer, type PageServerOptions, type PageServerHandle, type PageServerStats } from './server.js';
export { LocalPages } from './local-pages.js';
export { LazyPagesServer, type LazyStats, type LazyServerOptions } from './lazy-server.js';
export { PostCopyPages, servePostCopy, type PostCopyServer, type PostCopyServerOptions } from './post-copy.js';
