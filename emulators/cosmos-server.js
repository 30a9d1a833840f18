#!/usr/bin/env node
// Local Cosmos DB (NoSQL API) emulator for docgate: @vercel/cosmosdb-server behind a keep-alive
// HTTPS server. The package's own CLI answers with "connection: close" on every response, which
// caps it at ~20 ops/s over TLS; keepAlive lifts that to several hundred.
//
// Persistence: none. @vercel/cosmosdb-server keeps every database, container and item in memory
// (its only filesystem access is reading its bundled, self-signed, expired TLS certificate), so
// data lives exactly as long as this process. Stopping the emulator discards everything.
//
// Usage: node emulators/cosmos-server.js [port]   (or COSMOS_EMULATOR_PORT; default 8081)
// Binds to 127.0.0.1 only: the emulator accepts any key and must never be reachable from outside.
"use strict";

const { createHttpsServer } = require("@vercel/cosmosdb-server");

const HOST = "127.0.0.1";
const DEFAULT_PORT = 8081;

function readPort() {
  const raw = process.argv[2] || process.env.COSMOS_EMULATOR_PORT || String(DEFAULT_PORT);
  const port = Number.parseInt(raw, 10);
  if (!Number.isInteger(port) || port <= 0 || port > 65535) {
    console.error(`cosmos-server: invalid port ${JSON.stringify(raw)}`);
    process.exit(2);
  }
  return port;
}

const port = readPort();
const server = createHttpsServer({ keepAlive: true });

server.on("error", (err) => {
  console.error(`cosmos-server: ${err.message}`);
  process.exit(1);
});

server.listen(port, HOST, () => {
  console.log(`cosmos-server listening on https://${HOST}:${port}/ (pid ${process.pid})`);
});

function shutdown(signal) {
  console.log(`cosmos-server: ${signal} received, shutting down`);
  // Keep-alive sockets would hold close() open indefinitely; drop them, and do not wait long.
  server.close(() => process.exit(0));
  if (typeof server.closeAllConnections === "function") {
    server.closeAllConnections();
  }
  setTimeout(() => process.exit(0), 2000).unref();
}

process.on("SIGTERM", () => shutdown("SIGTERM"));
process.on("SIGINT", () => shutdown("SIGINT"));
