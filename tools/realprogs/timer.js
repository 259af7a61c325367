// A node program as a user would run it: a setInterval timer and, when given a port file, an
// HTTP server on 127.0.0.1 (port chosen by the kernel, written to that file).
// READY/PASS protocol of tools/testprogs: `READY node PID`, a counter line per tick; on SIGTERM
// it checks the timer still ticks and prints `PASS node N` as its last line.
'use strict';
const fs = require('fs');
const http = require('http');

const portFile = process.argv[2];
let ticks = 0;
setInterval(() => { ticks++; console.log(ticks); }, 100);

process.on('SIGTERM', () => {
  const before = ticks;
  setTimeout(() => {
    const ok = ticks > before;
    console.log(`${ok ? 'PASS' : 'FAIL'} node ${ticks}${ok ? '' : ' timer stopped'}`);
    process.exit(ok ? 0 : 1);
  }, 350);
});

function ready() { console.log(`READY node ${process.pid}`); }
if (portFile) {
  let served = 0;
  const server = http.createServer((req, res) => {
    served++;
    res.end(`hello ${served} ticks ${ticks}\n`);
  });
  server.listen(0, '127.0.0.1', () => {
    fs.writeFileSync(portFile, String(server.address().port));
    ready();
  });
} else {
  ready();
}
