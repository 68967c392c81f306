// An echo server on the npm `ws` package, for the wsloop integration tests.
//
//   node echo_server.js --port 0 [--protocols chat,superchat]
//
// Prints one JSON object per line on stdout: first {"event":"listening","port":N},
// then "open", "text", "binary" and "closed" events with the request path.
// Text commands: "close CODE [REASON]" closes with that code, "close" sends a
// close frame without a code, "drop" ends TCP without a close frame; any other
// message is echoed. Exits when its stdin closes (the test process is gone).
'use strict';

const { WebSocketServer } = require('ws');

function parseArgs(argv) {
  const options = { port: '0', protocols: '' };
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i].replace(/^--/, '');
    if (!(name in options) || i + 1 >= argv.length) {
      process.stderr.write(`usage: echo_server.js --port N [--protocols a,b]\n`);
      process.exit(2);
    }
    options[name] = argv[i + 1];
  }
  return options;
}

const options = parseArgs(process.argv.slice(2));
const known = options.protocols ? options.protocols.split(',') : [];

function report(item) {
  process.stdout.write(JSON.stringify(item) + '\n');
}

const server = new WebSocketServer({
  host: '127.0.0.1',
  port: Number(options.port),
  // Compress every message, however small, when the client offers it.
  perMessageDeflate: { threshold: 0 },
  maxPayload: 64 * 1024 * 1024,
  // The first offered subprotocol that this server knows; false sends none.
  handleProtocols: (offered) => {
    for (const name of offered) {
      if (known.includes(name)) return name;
    }
    return false;
  },
});

server.on('listening', () => {
  report({ event: 'listening', port: server.address().port });
});

server.on('connection', (ws, request) => {
  const path = request.url;
  report({ event: 'open', path, protocol: ws.protocol });
  ws.on('message', (data, isBinary) => {
    if (!isBinary) {
      const text = data.toString('utf8');
      const command = /^close (\d+)(?: ([\s\S]*))?$/.exec(text);
      if (command) {
        ws.close(Number(command[1]), command[2] || '');
        return;
      }
      if (text === 'close') {
        ws.close();
        return;
      }
      if (text === 'drop') {
        ws.terminate();
        return;
      }
    }
    report({ event: isBinary ? 'binary' : 'text', path, size: data.length });
    ws.send(data, { binary: isBinary });
  });
  ws.on('close', (code, reason) => {
    report({ event: 'closed', path, code, reason: reason.toString('utf8') });
  });
  ws.on('error', (error) => {
    report({ event: 'error', path, message: String(error.message) });
  });
});

process.stdin.on('end', () => {
  server.close();
  process.exit(0);
});
process.stdin.resume();
