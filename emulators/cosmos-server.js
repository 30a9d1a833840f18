#!/usr/bin/env node
// Local Cosmos DB (NoSQL API) emulator for docgate: @vercel/cosmosdb-server behind a keep-alive
// HTTPS server, with its data persisted to disk so a restart (Ctrl-C, kill -9, reboot) keeps
// every database, container and item. The package's own CLI answers with "connection: close"
// on every response, which caps it at ~20 ops/s over TLS; keepAlive lifts that to several hundred.
//
// Persistence (with a data directory; without one, memory only as the package itself):
// - snapshot.json: the whole state (databases, containers with their settings, items exactly as
//   stored: _rid, _etag, _ts kept, so TTLs and ETags survive), written to a temporary file,
//   fsynced, renamed over the old one, and the directory fsynced;
// - log.jsonl: one line per successful write (the item as stored, or its deletion), appended and
//   fsynced BEFORE the response is sent: an acknowledged write is on disk. Writes completing in
//   the same turn of the event loop share one fsync (group commit).
// At start the snapshot is loaded and the log replayed (a torn last line from a crash mid-append
// is dropped: its write was never acknowledged), then the two are compacted into a new snapshot.
// The log is compacted again when it grows past COMPACT_BYTES.
// Not persisted: user-defined functions (docgate has none).
//
// Usage: node emulators/cosmos-server.js [port] [data-dir]
//   (or COSMOS_EMULATOR_PORT, default 8081; COSMOS_EMULATOR_DATA_DIR, default memory only)
// Binds to 127.0.0.1 only: the emulator accepts any key and must never be reachable from outside.
"use strict";

const fs = require("fs");
const path = require("path");
const accountModule = require("@vercel/cosmosdb-server/lib/account");
const partitionHeader = require("@vercel/cosmosdb-server/lib/utils/get-partition-from-header");
const { createHttpsServer } = require("@vercel/cosmosdb-server");

const HOST = "127.0.0.1";
const DEFAULT_PORT = 8081;
const COMPACT_BYTES = 64 * 1024 * 1024;

function readPort() {
  const raw = process.argv[2] || process.env.COSMOS_EMULATOR_PORT || String(DEFAULT_PORT);
  const port = Number.parseInt(raw, 10);
  if (!Number.isInteger(port) || port <= 0 || port > 65535) {
    console.error(`cosmos-server: invalid port ${JSON.stringify(raw)}`);
    process.exit(2);
  }
  return port;
}

// The package builds its Account when the server starts listening; keep a handle on it (the
// state to snapshot and restore). It looks the class up on its module at that moment.
let account = null;
const PackageAccount = accountModule.default;
accountModule.default = class PersistedAccount extends PackageAccount {
  constructor(...args) {
    super(...args);
    account = this;
  }
};

// State <-> plain JSON ---------------------------------------------------------------------------

function itemsOf(items) {
  return [...items._data.values()];
}

function snapshotState() {
  return {
    version: 1,
    databases: itemsOf(account.databases).map((database) => ({
      data: database.read(),
      ridCount: database.collections._ridCount,
      containers: itemsOf(database.collections).map((container) => ({
        data: container.read(),
        ridCount: container.documents._ridCount,
        items: itemsOf(container.documents).map((item) => item.read()),
      })),
    })),
    databaseRidCount: account.databases._ridCount,
  };
}

function keepRidCount(items, count) {
  // New rids come from this counter: it must never fall behind a restored one.
  items._ridCount = Math.max(items._ridCount, count || 0);
}

function restoreState(state) {
  for (const entry of state.databases) {
    account.databases._set(entry.data);
    const database = account.database(entry.data.id);
    keepRidCount(database.collections, entry.ridCount);
    for (const containerEntry of entry.containers) {
      database.collections._set(containerEntry.data);
      const container = database.collection(containerEntry.data.id);
      keepRidCount(container.documents, containerEntry.ridCount);
      for (const item of containerEntry.items) {
        container.documents._set(item);
      }
    }
  }
  keepRidCount(account.databases, state.databaseRidCount);
}

function removeIfPresent(items, id, partition) {
  if (items._item("/id", id, partition).read()) {
    items.delete(id, partition);
  }
}

function putContainer(database, data) {
  const existing = database.collection(data.id);
  if (existing.read() && existing.read()._rid === data._rid) {
    existing._data = data; // replaced in place: its items stay
  } else {
    removeIfPresent(database.collections, data.id, data.id);
    database.collections._set(data);
  }
}

// One log record -> the state change it stands for.
function apply(record) {
  const database = record.db === undefined ? null : account.database(record.db);
  const container = record.coll === undefined ? null : database.collection(record.coll);
  switch (record.op) {
    case "put-db":
      if (!account.database(record.data.id).read()) account.databases._set(record.data);
      keepRidCount(account.databases, record.rid);
      break;
    case "del-db":
      removeIfPresent(account.databases, record.id, record.id);
      break;
    case "put-coll":
      putContainer(database, record.data);
      keepRidCount(database.collections, record.rid);
      break;
    case "del-coll":
      removeIfPresent(database.collections, record.id, record.id);
      break;
    case "put-doc": {
      const documents = container.documents;
      removeIfPresent(documents, record.data.id, documents._getPartition(record.data));
      documents._set(record.data);
      keepRidCount(documents, record.rid);
      break;
    }
    case "del-doc":
      removeIfPresent(container.documents, record.id, record.pk);
      break;
    case "all-docs": {
      const documents = container.documents;
      documents._data.clear();
      documents._index.clear();
      for (const item of record.items) documents._set(item);
      keepRidCount(documents, record.rid);
      break;
    }
    default:
      throw new Error(`unknown log record ${record.op}`);
  }
}

// Which write a request is, and the record of its outcome ----------------------------------------

const SEGMENTS = /^\/dbs(?:\/([^/]+)(?:\/colls(?:\/([^/]+)(?:\/docs(?:\/([^/]+))?)?)?)?)?$/;

function isTrue(req, name) {
  return String(req.headers[name] || "").toLowerCase() === "true";
}

// The write a request makes, or null for reads, queries and what is not persisted (UDFs).
function writeOf(req) {
  if (req.method === "GET" || req.method === "HEAD") return null;
  let pathname = decodeURIComponent(new URL(req.url, "https://x").pathname);
  pathname = pathname.replace(/^\/\/+/, "/").replace(/\/+$/, "");
  const query = isTrue(req, "x-ms-documentdb-isquery") ||
    req.headers["content-type"] === "application/query+json";
  const match = SEGMENTS.exec(pathname);
  if (query || !match) return null;
  const [, db, coll, doc] = match;
  const docs = pathname.includes("/docs");
  if (docs && isTrue(req, "x-ms-cosmos-is-batch-request")) return { kind: "batch", db, coll };
  if (docs && doc && req.method === "DELETE") {
    const pk = partitionHeader.parsePartitionKey(partitionHeader.default(req), doc);
    return { kind: "del-doc", db, coll, id: doc, pk };
  }
  if (docs) return { kind: "put-doc", db, coll };
  if (pathname.includes("/colls")) {
    return req.method === "DELETE" ? { kind: "del-coll", db, id: coll } : { kind: "put-coll", db };
  }
  if (db) return req.method === "DELETE" ? { kind: "del-db", id: db } : null;
  return { kind: "put-db" };
}

function recordOf(write, body) {
  switch (write.kind) {
    case "put-db":
      return { op: "put-db", data: body, rid: account.databases._ridCount };
    case "put-coll":
      return { op: "put-coll", db: write.db, data: body, rid: account.database(write.db).collections._ridCount };
    case "put-doc": {
      const documents = account.database(write.db).collection(write.coll).documents;
      return { op: "put-doc", db: write.db, coll: write.coll, data: body, rid: documents._ridCount };
    }
    case "batch": {
      // Rare (docgate runs batches one by one on the emulator): the container's items whole.
      const documents = account.database(write.db).collection(write.coll).documents;
      const items = itemsOf(documents).map((item) => item.read());
      return { op: "all-docs", db: write.db, coll: write.coll, items, rid: documents._ridCount };
    }
    case "del-doc":
      return { op: "del-doc", db: write.db, coll: write.coll, id: write.id, pk: write.pk };
    case "del-coll":
      return { op: "del-coll", db: write.db, id: write.id };
    default:
      return { op: write.kind, id: write.id };
  }
}

// The files ---------------------------------------------------------------------------------------

class Store {
  constructor(directory) {
    this.directory = directory;
    this.snapshotPath = path.join(directory, "snapshot.json");
    this.logPath = path.join(directory, "log.jsonl");
    this.pending = [];
    this.fd = null;
    this.logBytes = 0;
  }

  load() {
    fs.mkdirSync(this.directory, { recursive: true });
    let items = 0;
    if (fs.existsSync(this.snapshotPath)) {
      restoreState(JSON.parse(fs.readFileSync(this.snapshotPath, "utf8")));
    }
    let replayed = 0;
    if (fs.existsSync(this.logPath)) {
      const lines = fs.readFileSync(this.logPath, "utf8").split("\n");
      for (const [index, line] of lines.entries()) {
        if (!line) continue;
        let record;
        try {
          record = JSON.parse(line);
        } catch (error) {
          if (index >= lines.length - 2) break; // torn last append: never acknowledged
          throw new Error(`${this.logPath}:${index + 1} is corrupt: ${error.message}`);
        }
        apply(record);
        replayed += 1;
      }
    }
    this.compact();
    for (const database of itemsOf(account.databases)) {
      for (const container of itemsOf(database.collections)) items += container.documents._data.size;
    }
    console.log(
      `cosmos-server: data in ${this.directory}: ${account.databases._data.size} database(s), ` +
        `${items} item(s) (${replayed} logged write(s) replayed)`,
    );
  }

  // Snapshot the state, then start an empty log (crash-safe at every step: until the rename the
  // old snapshot and log stand; after it the new snapshot holds everything the log held).
  compact() {
    const temporary = `${this.snapshotPath}.tmp`;
    const fd = fs.openSync(temporary, "w");
    fs.writeSync(fd, JSON.stringify(snapshotState()));
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fs.renameSync(temporary, this.snapshotPath);
    this.syncDirectory();
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = fs.openSync(this.logPath, "w");
    fs.fsyncSync(this.fd);
    this.syncDirectory();
    this.logBytes = 0;
  }

  syncDirectory() {
    const fd = fs.openSync(this.directory, "r");
    fs.fsyncSync(fd);
    fs.closeSync(fd);
  }

  // Queue `record`; `acknowledge` runs once it is on disk.
  append(record, acknowledge) {
    this.pending.push([JSON.stringify(record) + "\n", acknowledge]);
    if (this.pending.length === 1) setImmediate(() => this.flush());
  }

  flush() {
    const batch = this.pending;
    this.pending = [];
    const text = batch.map(([line]) => line).join("");
    try {
      fs.writeSync(this.fd, text);
      fs.fsyncSync(this.fd);
    } catch (error) {
      // Unacknowledged writes may be applied in memory but are not durable: stop rather than
      // answer success for them (the caller retries against a restarted emulator).
      console.error(`cosmos-server: cannot write ${this.logPath}: ${error.message}`);
      process.exit(1);
    }
    this.logBytes += Buffer.byteLength(text);
    for (const [, acknowledge] of batch) acknowledge();
    if (this.logBytes > COMPACT_BYTES) this.compact();
  }
}

// Every successful write is logged before its response leaves.
function persistWrites(server, store) {
  const [handler] = server.listeners("request");
  server.removeAllListeners("request");
  server.on("request", (req, res) => {
    const write = writeOf(req);
    if (write) {
      const end = res.end.bind(res);
      res.end = (chunk, ...rest) => {
        if (res.statusCode >= 300) return end(chunk, ...rest);
        let body = null;
        try {
          body = chunk ? JSON.parse(chunk.toString()) : null;
        } catch (error) {
          body = null;
        }
        if (write.kind.startsWith("put-") && (!body || !body._rid)) return end(chunk, ...rest);
        store.append(recordOf(write, body), () => end(chunk, ...rest));
        return res;
      };
    }
    handler(req, res);
  });
}

const port = readPort();
const dataDir = process.argv[3] || process.env.COSMOS_EMULATOR_DATA_DIR || "";
const server = createHttpsServer({ keepAlive: true });

server.on("error", (err) => {
  console.error(`cosmos-server: ${err.message}`);
  process.exit(1);
});

if (dataDir) {
  const store = new Store(path.resolve(dataDir));
  persistWrites(server, store);
  // Runs right after the package created its Account, before any request is read.
  server.on("listening", () => store.load());
}

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
