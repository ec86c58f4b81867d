// Starts @vercel/cosmosdb-server for the tests, fast and a little more faithful.
//
// Two compensations for the stand-in, kept here so product code never sees them:
// - keep-alive on, so clients reuse connections (its CLI closes every one);
// - a read of a missing item answers 404 as Cosmos DB does, not 500.
// With COSMOS_ADVERTISED_PORT set, the account's endpoints name that port, so a
// test can put a proxy in front that the SDK's endpoint discovery keeps using.
// Prints one JSON line {"port": N} once it listens; exits when stdin closes.
"use strict";

const { createHttpsServer } = require("@vercel/cosmosdb-server");

const SINGLE_DOCUMENT = /^\/dbs\/[^/]+\/colls\/[^/]+\/docs\/[^/]+\/?$/;

const server = createHttpsServer({ keepAlive: true });

server.prependListener("request", (req, res) => {
  if (req.method !== "GET" || !SINGLE_DOCUMENT.test(req.url.split("?")[0])) {
    return;
  }
  const end = res.end.bind(res);
  res.end = (body, ...rest) => {
    if (res.statusCode === 500) {
      res.statusCode = 404;
      body = JSON.stringify({
        code: "NotFound",
        message: "Entity with the specified id does not exist in the system.",
      });
    }
    return end(body, ...rest);
  };
});

const advertisedPort = process.env.COSMOS_ADVERTISED_PORT;
if (advertisedPort) {
  server.prependListener("request", (req, res) => {
    if (req.method !== "GET" || req.url.split("?")[0] !== "/") {
      return;
    }
    const end = res.end.bind(res);
    res.end = (body, ...rest) => {
      const ownPort = `:${server.address().port}/`;
      const text = String(body).split(ownPort).join(`:${advertisedPort}/`);
      res.setHeader("Content-Length", Buffer.byteLength(text));
      return end(text, ...rest);
    };
  });
}

server.keepAliveTimeout = 60000;
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + "\n");
});

process.stdin.resume();
process.stdin.on("end", () => process.exit(0));
