export * from './maps.js';
export * from './status.js';
export * from './stat.js';
export * from './smaps.js';
export * from './fdinfo.js';
export * from './mountinfo.js';
