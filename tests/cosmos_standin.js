// Starts @vercel/cosmosdb-server for the tests, fast and a little more faithful.
//
// Two compensations for the stand-in, kept here so product code never sees them:
// - keep-alive on, so clients reuse connections (its CLI closes every one);
// - a read of a missing item answers 404 as Cosmos DB does, not 500.
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

server.keepAliveTimeout = 60000;
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + "\n");
});

process.stdin.resume();
process.stdin.on("end", () => process.exit(0));
