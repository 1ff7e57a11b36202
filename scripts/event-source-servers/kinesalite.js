#!/usr/bin/env node
// Starts kinesalite (in memory) on a loopback address; kinesalite's own CLI listens on every interface.
//
//   node scripts/event-source-servers/kinesalite.js PORT [MODULES_DIR]
//
// MODULES_DIR is the node_modules that scripts/install-event-source-servers.sh filled (default:
// target/event-source-servers/node_modules of this checkout).
'use strict'
const path = require('path')

const port = Number(process.argv[2] || 4567)
const modules = process.argv[3] || path.join(__dirname, '..', '..', 'target', 'event-source-servers', 'node_modules')
const kinesalite = require(path.resolve(modules, 'kinesalite'))

const server = kinesalite({
  // Tests wait for ACTIVE; AWS's few seconds in CREATING would only slow them down.
  createStreamMs: 20,
  deleteStreamMs: 20,
  updateStreamMs: 20,
  // The limit counts every open shard of the server, and a reused server keeps the streams of every
  // earlier test run.
  shardLimit: 1000000,
})
server.listen(port, '127.0.0.1', () => {
  const a = server.address()
  console.log(`kinesalite listening at http://${a.address}:${a.port}`)
})
