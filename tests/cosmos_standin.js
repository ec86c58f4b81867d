// Starts @vercel/cosmosdb-server for the tests, fast and a little more faithful.
//
// Two compensations for the stand-in, kept here so product code never sees them:
// - keep-alive on, so clients reuse connections (its CLI closes every one);
// - a read of a missing item answers 404 as Cosmos DB does, not 500.
// With COSMOS_ADVERTISED_PORT set, the account's endpoints name that port, so a
// test can put a proxy in front that the SDK's endpoint discovery keeps using.
// With COSMOS_STANDIN_BULK=1, POST /_standin/bulk/dbs/{db}/colls/{coll} with a
// JSON array of documents creates them all in this process, straight through the
// stand-in's own collection (benchmarks fill it with that; Cosmos DB has no such
// route, so nothing in the product may use it). Answers {"created": N}.
// With COSMOS_STANDIN_LINEAR_QUERIES=1, the stand-in's query engine
// (@zeit/cosmosdb-query) builds its list of input documents in linear time: as
// published it appends each document with an array spread, `[...$, {c}]`, which
// is quadratic in the container's size (about 0.1 s at 10,000 documents, 20 s at
// 40,000). It still evaluates every query by scanning every document, where
// Cosmos DB reads the index; only that quadratic step changes.
// Prints one JSON line {"port": N} once it listens; exits when stdin closes.
"use strict";

// `$c.reduce(($, c) => typeof c !== "undefined" ? [...$, { c: c }] : $, [])`,
// as @zeit/cosmosdb-query generates it for a query's FROM source.
const QUADRATIC_SOURCE =
  /\$c\.reduce\(\(\$, (\w+)\) => typeof \1 !== "undefined" \? \[\.\.\.\$, \{\s*(\w+): \1\s*\}\] : \$, \[\]\)/g;

if (process.env.COSMOS_STANDIN_LINEAR_QUERIES === "1") {
  const path = require("path");
  const serverDir = path.dirname(require.resolve("@vercel/cosmosdb-server"));
  const queryModule = require(
    require.resolve("@zeit/cosmosdb-query", { paths: [serverDir] }),
  );
  const Query = Object.getPrototypeOf(queryModule.default("SELECT * FROM c"));
  const generated = Object.getOwnPropertyDescriptor(Query, "code").get;
  Object.defineProperty(Query, "code", {
    configurable: true,
    get() {
      const code = generated.call(this);
      return (
        code &&
        code.replace(
          QUADRATIC_SOURCE,
          (_, item, alias) =>
            `$c.filter((${item}) => typeof ${item} !== "undefined")` +
            `.map((${item}) => ({ ${alias}: ${item} }))`,
        )
      );
    },
  });
}

const BULK_PATH = /^\/_standin\/bulk\/dbs\/([^/]+)\/colls\/([^/]+)\/?$/;

if (process.env.COSMOS_STANDIN_BULK === "1") {
  // The library looks its router up on every request, so wrapping it here
  // hands the bulk route the server's own account object.
  const routes = require("@vercel/cosmosdb-server/lib/routes");
  const json = require("@vercel/cosmosdb-server/lib/json").default;
  const route = routes.default;
  routes.default = (req) => {
    const match = req.method === "POST" && BULK_PATH.exec(req.url.split("?")[0]);
    if (!match) {
      return route(req);
    }
    const params = {
      dbId: decodeURIComponent(match[1]),
      collId: decodeURIComponent(match[2]),
    };
    return [params, bulkCreate];
  };
  async function bulkCreate(account, req, res, { dbId, collId }) {
    const docs = await json(req);
    const collection = account.database(dbId).collection(collId);
    if (!Array.isArray(docs) || !collection.read()) {
      res.statusCode = 400;
      return { message: "expected a JSON array and an existing collection" };
    }
    let created = 0;
    for (const doc of docs) {
      try {
        collection.documents.create(doc);
        created += 1;
      } catch (err) {
        if (!err.conflict) {
          throw err;
        }
      }
    }
    res.statusCode = 200;
    return { created };
  }
}

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
