// A TLS echo server on node's `tls` (another TLS stack and another author's
// event loop), speaking the nul protocol, for testing `tlsecho send` against
// a peer we did not write.
//
//   node node_echo_server.js CERT KEY MODE
//
// MODE: "echo" (correct), "corrupt" (flips the 6th echoed byte), or
// "truncate" (closes after echoing 10 bytes). Prints "listening PORT" once
// bound to 127.0.0.1 on a free port.
"use strict";
const fs = require("fs");
const tls = require("tls");

const [cert, key, mode] = process.argv.slice(2);
const server = tls.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) }, (sock) => {
  let echoed = 0;
  let done = false;
  sock.on("data", (chunk) => {
    if (done) return;
    let end = chunk.indexOf(0);
    let out = end < 0 ? chunk : chunk.subarray(0, end);
    if (mode === "corrupt" && echoed <= 5 && echoed + out.length > 5) {
      out = Buffer.from(out);
      out[5 - echoed] ^= 0x20;
    }
    if (mode === "truncate" && echoed + out.length >= 10) {
      out = out.subarray(0, 10 - echoed);
      end = 0;
    }
    echoed += out.length;
    if (out.length) sock.write(out);
    if (end >= 0) {
      done = true;
      sock.end(); // close_notify, then FIN
    }
  });
  sock.on("error", () => {});
});
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
