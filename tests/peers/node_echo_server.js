// A TLS echo server on node's `tls` (another TLS stack and another author's
// event loop), speaking the nul protocol, for testing `tlsecho send` and
// `tlsecho bench` against a peer we did not write.
//
//   node node_echo_server.js CERT KEY MODE [PORT]
//
// MODE, per connection: "echo" (correct), "corrupt" (flips the 6th echoed
// byte), "drop" (leaves out the 6th byte), "duplicate" (sends the 6th byte
// twice), "truncate" (closes after echoing 10 bytes), or "stall" (the first
// connection's echo stops for one second after 2000 bytes, once). Prints
// "listening PORT" once bound to 127.0.0.1 on PORT (default: a free port).
"use strict";
const fs = require("fs");
const tls = require("tls");

const [cert, key, mode, port] = process.argv.slice(2);
let stalled = false;
const server = tls.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) }, (sock) => {
  let echoed = 0;
  let done = false;
  let queue = Promise.resolve();
  sock.on("data", (chunk) => {
    if (done) return;
    let end = chunk.indexOf(0);
    let out = end < 0 ? chunk : chunk.subarray(0, end);
    const at6 = echoed <= 5 && echoed + out.length > 5;
    if (mode === "corrupt" && at6) {
      out = Buffer.from(out);
      out[5 - echoed] ^= 0x20;
    }
    if (mode === "drop" && at6) {
      out = Buffer.concat([out.subarray(0, 5 - echoed), out.subarray(6 - echoed)]);
      echoed += 1;
    }
    if (mode === "duplicate" && at6) {
      out = Buffer.concat([out.subarray(0, 6 - echoed), out.subarray(5 - echoed)]);
      echoed -= 1;
    }
    if (mode === "truncate" && echoed + out.length >= 10) {
      out = out.subarray(0, 10 - echoed);
      end = 0;
    }
    const stallNow = mode === "stall" && !stalled && echoed + out.length >= 2000;
    echoed += out.length;
    const finish = end >= 0;
    if (finish) done = true;
    const send = () => {
      if (out.length) sock.write(out);
      if (finish) sock.end(); // close_notify, then FIN
    };
    if (stallNow) {
      stalled = true;
      queue = queue.then(() => new Promise((r) => setTimeout(r, 1000)));
    }
    queue = queue.then(send);
  });
  sock.on("error", () => {});
});
server.listen(Number(port || 0), "127.0.0.1", () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
