#!/usr/bin/env node
// A small MCP client on the official TypeScript SDK (tests/peers/node_modules) for the profile
// tests: it connects to a server, optionally announces MCP roots or form elicitation (answering
// every question with ACTION: accept, which ticks every boolean, decline or cancel), calls the
// given tools in order and prints ONE JSON document:
//
//   node call_tools.mjs [--root DIR]... [--elicit ACTION] [--env K=V]... --calls JSON -- CMD ARGS...
//
//   {"serverInfo": {...}, "tools": ["name", ...], "roots": N, "elicitations": [params, ...],
//    "calls": [{"name": "...", "isError": false, "text": "..."} | {"name": "...", "error": {"code": N, "message": "..."}}]}
//
// A tool that fails (isError) or a call answered with a JSON-RPC error is reported, not fatal:
// the tests look at what was refused. The child environment is the SDK's default plus every
// `--env` pair and every MCP_GUARD_* variable of ours.

import { createRequire } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
// The SDK is installed once, for the peer drivers, in tests/peers (scripts/setup-peers).
const peers = createRequire(path.join(here, "..", "peers", "package.json"));
const sdk = (p) => import(pathToFileURL(peers.resolve(`@modelcontextprotocol/sdk/${p}`)).href);
const { Client } = await sdk("client/index.js");
const { StdioClientTransport, getDefaultEnvironment } = await sdk("client/stdio.js");
const { ElicitRequestSchema, ListRootsRequestSchema } = await sdk("types.js");

const TIMEOUT_MS = Number(process.env.PEER_DRIVER_TIMEOUT_MS || 90_000);
const REQUEST_TIMEOUT_MS = 30_000;

function fail(msg) {
  process.stderr.write(`call_tools: FAILED: ${msg}\n`);
  process.exit(1);
}

function parseArgs(argv) {
  const sep = argv.indexOf("--");
  if (sep < 0 || sep === argv.length - 1) fail("usage: call_tools.mjs [--root DIR]... [--env K=V]... --calls JSON -- CMD ARGS...");
  const opts = argv.slice(0, sep);
  const out = { roots: [], elicit: null, env: {}, calls: [], cmd: argv.slice(sep + 1) };
  while (opts.length) {
    const o = opts.shift();
    const v = opts.shift();
    if (v === undefined) fail(`${o} needs a value`);
    if (o === "--root") out.roots.push(v);
    else if (o === "--calls") out.calls = JSON.parse(v);
    else if (o === "--elicit") {
      if (!["accept", "decline", "cancel"].includes(v)) fail(`--elicit takes accept, decline or cancel, not ${v}`);
      out.elicit = v;
    }
    else if (o === "--env") {
      const eq = v.indexOf("=");
      if (eq <= 0) fail(`bad --env ${v}`);
      out.env[v.slice(0, eq)] = v.slice(eq + 1);
    } else fail(`unknown option ${o}`);
  }
  return out;
}

function textOf(result) {
  return (result.content || [])
    .map((c) => (c.type === "text" ? c.text : JSON.stringify(c)))
    .join("\n");
}

async function main(args) {
  const env = getDefaultEnvironment();
  for (const [k, v] of Object.entries(process.env)) if (k.startsWith("MCP_GUARD_")) env[k] = v;
  const transport = new StdioClientTransport({
    command: args.cmd[0],
    args: args.cmd.slice(1),
    env: { ...env, ...args.env },
    stderr: "inherit",
  });
  const capabilities = args.roots.length ? { roots: { listChanged: true } } : {};
  if (args.elicit) capabilities.elicitation = { form: {} };
  const client = new Client({ name: "mcp-guard-profile-test", version: "1.0.0" }, { capabilities });
  const elicitations = [];
  if (args.elicit) {
    client.setRequestHandler(ElicitRequestSchema, async (request) => {
      elicitations.push(request.params);
      if (args.elicit !== "accept") return { action: args.elicit };
      const content = {};
      for (const [name, schema] of Object.entries(request.params.requestedSchema?.properties || {})) {
        if (schema.type === "boolean") content[name] = true;
      }
      return { action: "accept", content };
    });
  }
  let rootsAsked = 0;
  if (args.roots.length) {
    client.setRequestHandler(ListRootsRequestSchema, async () => {
      rootsAsked += 1;
      return { roots: args.roots.map((d) => ({ uri: pathToFileURL(d).href, name: path.basename(d) })) };
    });
  }
  await client.connect(transport, { timeout: REQUEST_TIMEOUT_MS });
  try {
    if (args.roots.length) {
      // Servers ask for roots once initialized; wait for that before calling tools.
      const end = Date.now() + 10_000;
      while (rootsAsked === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
      await new Promise((r) => setTimeout(r, 200));
    }
    const tools = [];
    let cursor;
    do {
      const page = await client.listTools(cursor ? { cursor } : undefined);
      tools.push(...page.tools.map((t) => t.name));
      cursor = page.nextCursor;
    } while (cursor);
    const calls = [];
    for (const call of args.calls) {
      try {
        const r = await client.callTool({ name: call.name, arguments: call.arguments || {} }, undefined, {
          timeout: REQUEST_TIMEOUT_MS,
        });
        calls.push({ name: call.name, isError: Boolean(r.isError), text: textOf(r) });
      } catch (e) {
        if (typeof e.code !== "number") throw e;
        calls.push({ name: call.name, error: { code: e.code, message: String(e.message) } });
      }
    }
    return { serverInfo: client.getServerVersion(), tools: tools.sort(), roots: rootsAsked, elicitations, calls };
  } finally {
    await client.close();
  }
}

const args = parseArgs(process.argv.slice(2));
setTimeout(() => fail(`did not finish within ${TIMEOUT_MS} ms`), TIMEOUT_MS).unref();
try {
  process.stdout.write(JSON.stringify(await main(args), null, 2) + "\n");
  process.exit(0);
} catch (e) {
  fail(`${JSON.stringify(args.cmd)}: ${e && e.stack ? e.stack : e}`);
}
