#!/usr/bin/env node
'use strict';
// The `criu` executable: everything lives in the built package (dist/).
require('../dist/index.cjs').runCli();
