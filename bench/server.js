// The benchmark's echo servers, in one Node.js process on loopback:
//   - a WebSocket echo (the npm `ws` package, compression off, native
//     masking through `bufferutil` when it is installed), and
//   - a raw TCP echo, the physical limit the WebSocket figures are held to.
// Both listen on 127.0.0.1 with ports chosen by the kernel; once both listen,
// one JSON line goes to stdout: {"ws": port, "tcp": port, "pid": pid, ...}.
// The process ends when its stdin closes (the harness exiting ends it too).
"use strict";

const net = require("net");
const path = require("path");

// Prefer bench/node_modules; fall back to the test peers' install so that the
// smoke run works where only `make test` installed npm packages.
function load(name) {
  const roots = [__dirname, path.join(__dirname, "..", "tests", "node")];
  for (const root of roots) {
    try {
      return require(require.resolve(name, { paths: [root] }));
    } catch (err) {
      if (err.code !== "MODULE_NOT_FOUND") throw err;
    }
  }
  return null;
}

const ws = load("ws");
if (ws === null) {
  process.stderr.write("bench/server.js: the npm package `ws` is not installed (cd bench && npm ci)\n");
  process.exit(2);
}
const bufferutil = load("bufferutil");

const wss = new ws.WebSocketServer({
  host: "127.0.0.1",
  port: 0,
  perMessageDeflate: false,
  maxPayload: 64 * 1024 * 1024,
  clientTracking: false,
});

wss.on("connection", (sock) => {
  sock.on("message", (data, isBinary) => {
    sock.send(data, { binary: isBinary });
  });
  sock.on("error", () => {});
});

const tcp = net.createServer({ noDelay: true }, (sock) => {
  sock.setNoDelay(true);
  sock.on("data", (chunk) => {
    sock.write(chunk);
  });
  sock.on("error", () => {});
});
tcp.maxConnections = 100000;

let listening = 0;
function ready() {
  listening += 1;
  if (listening < 2) return;
  const info = {
    ws: wss.address().port,
    tcp: tcp.address().port,
    pid: process.pid,
    node: process.version,
    ws_version: require(require.resolve("ws/package.json", { paths: [__dirname, path.join(__dirname, "..", "tests", "node")] })).version,
    bufferutil: bufferutil !== null,
  };
  process.stdout.write(JSON.stringify(info) + "\n");
}

wss.on("listening", ready);
tcp.listen(0, "127.0.0.1", ready);

process.stdin.on("end", () => process.exit(0));
process.stdin.on("error", () => process.exit(0));
process.stdin.resume();
