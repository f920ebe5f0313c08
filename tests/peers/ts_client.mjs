#!/usr/bin/env node
// MCP client driver built on the official TypeScript SDK (`Client` + `StdioClientTransport`).
//
//   node ts_client.mjs SCENARIO [--dir DIR] [--env KEY=VALUE]... -- CMD ARGS...
//
// Launches CMD (a server, or `mcp-guard run ... -- server ...`), runs SCENARIO against it and prints
// ONE JSON document on stdout. Values that change from run to run (timestamps, random ids) are
// normalised, so a direct run and a guarded run of the same scenario print identical documents.
// Exits non-zero with a message on stderr when anything fails.
//
// Scenarios: basic, everything, filesystem, memory.
//
// The child environment is the SDK's default (HOME, PATH, ...) plus every `--env` pair and every
// variable of ours whose name starts with MCP_GUARD_ or is RUST_LOG / RUST_BACKTRACE.

import { createHash } from "node:crypto";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport, getDefaultEnvironment } from "@modelcontextprotocol/sdk/client/stdio.js";
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  ListRootsRequestSchema,
  LoggingMessageNotificationSchema,
} from "@modelcontextprotocol/sdk/types.js";

const OVERALL_TIMEOUT_MS = Number(process.env.PEER_DRIVER_TIMEOUT_MS || 90_000);
const REQUEST_TIMEOUT_MS = 30_000;

function usage(msg) {
  process.stderr.write(
    `ts_client: ${msg}\nusage: node ts_client.mjs SCENARIO [--dir DIR] [--env K=V]... -- CMD ARGS...\n` +
      `scenarios: ${Object.keys(SCENARIOS).join(", ")}\n`,
  );
  process.exit(2);
}

function fail(msg) {
  process.stderr.write(`ts_client: FAILED: ${msg}\n`);
  process.exit(1);
}

function check(cond, msg) {
  if (!cond) throw new Error(`check failed: ${msg}`);
}

const sha256 = (s) => createHash("sha256").update(s).digest("hex");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(pred, what, ms = 10_000) {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(20);
  }
}

function textOf(result) {
  return (result.content || [])
    .filter((c) => c.type === "text")
    .map((c) => c.text)
    .join("\n");
}

// Stable view of a list result: the items sorted by a key, pagination cursors dropped.
function sortedBy(items, key) {
  return [...items].sort((a, b) => String(a[key]).localeCompare(String(b[key])));
}

// ---------------------------------------------------------------------------------------------
// Session plumbing

function parseArgs(argv) {
  const sep = argv.indexOf("--");
  if (sep < 0) usage("missing `--` before the server command");
  const opts = argv.slice(0, sep);
  const cmd = argv.slice(sep + 1);
  if (cmd.length === 0) usage("missing server command after `--`");
  const scenario = opts.shift();
  if (!scenario || !(scenario in SCENARIOS)) usage(`unknown scenario ${JSON.stringify(scenario)}`);
  const parsed = { scenario, dir: null, env: {}, cmd };
  while (opts.length) {
    const o = opts.shift();
    if (o === "--dir") parsed.dir = opts.shift();
    else if (o === "--env") {
      const kv = opts.shift() || "";
      const eq = kv.indexOf("=");
      if (eq <= 0) usage(`bad --env ${JSON.stringify(kv)}`);
      parsed.env[kv.slice(0, eq)] = kv.slice(eq + 1);
    } else usage(`unknown option ${o}`);
  }
  return parsed;
}

function childEnv(extra) {
  const env = getDefaultEnvironment();
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith("MCP_GUARD_") || k === "RUST_LOG" || k === "RUST_BACKTRACE") env[k] = v;
  }
  return { ...env, ...extra };
}

async function connect(args, { capabilities = {}, setup = () => {} } = {}) {
  const transport = new StdioClientTransport({
    command: args.cmd[0],
    args: args.cmd.slice(1),
    env: childEnv(args.env),
    stderr: "inherit",
  });
  const state = { protocolVersion: null, transport };
  // The Client reports the negotiated version to transports that want it; stdio does not.
  transport.setProtocolVersion = (v) => {
    state.protocolVersion = v;
  };
  const client = new Client({ name: "mcp-guard-ts-driver", version: "1.0.0" }, { capabilities });
  setup(client, state);
  await client.connect(transport, { timeout: REQUEST_TIMEOUT_MS });
  state.client = client;
  // Tap what arrives on the wire. The SDK handles notifications a microtask later than responses,
  // so `onprogress` can miss a progress notification that arrives in the same read as the final
  // response: count progress notifications here instead.
  state.wireProgress = new Map();
  const deliver = transport.onmessage;
  transport.onmessage = (msg, extra) => {
    if (msg && msg.method === "notifications/progress" && msg.params) {
      const token = JSON.stringify(msg.params.progressToken);
      state.wireProgress.set(token, [...(state.wireProgress.get(token) || []), msg.params]);
    }
    return deliver.call(transport, msg, extra);
  };
  return state;
}

function initSummary(state) {
  const { client } = state;
  const info = client.getServerVersion();
  check(info && typeof info.name === "string", "server reported no serverInfo.name");
  check(typeof state.protocolVersion === "string", "no protocol version negotiated");
  const instructions = client.getInstructions();
  return {
    protocolVersion: state.protocolVersion,
    serverInfo: info,
    capabilities: client.getServerCapabilities(),
    instructionsSha256: instructions === undefined ? null : sha256(instructions),
  };
}

async function listAllTools(client) {
  const tools = [];
  let cursor;
  do {
    const page = await client.listTools(cursor ? { cursor } : undefined);
    tools.push(...page.tools);
    cursor = page.nextCursor;
  } while (cursor);
  return sortedBy(tools, "name");
}

// ---------------------------------------------------------------------------------------------
// Scenarios: each returns the JSON-able result document.

async function basic(args) {
  const state = await connect(args);
  try {
    const tools = await listAllTools(state.client);
    check(tools.length > 0, "tools/list returned no tools");
    return { initialize: initSummary(state), tools };
  } finally {
    await state.client.close();
  }
}

const LARGE_PAYLOAD_BYTES = 1 << 20;

async function everything(args) {
  const seen = { rootsRequests: 0, samplingRequests: 0, elicitationRequests: 0, logs: [] };
  const state = await connect(args, {
    capabilities: { roots: { listChanged: true }, sampling: {}, elicitation: { form: {} } },
    setup: (client) => {
      client.setRequestHandler(ListRootsRequestSchema, async () => {
        seen.rootsRequests += 1;
        return { roots: [{ uri: "file:///tmp/mcp-guard-test-root", name: "test root" }] };
      });
      client.setRequestHandler(CreateMessageRequestSchema, async (req) => {
        seen.samplingRequests += 1;
        const msg = req.params.messages.map((m) => m.content?.text ?? "").join(" ");
        return {
          model: "mcp-guard-canned-model",
          role: "assistant",
          stopReason: "endTurn",
          content: { type: "text", text: `canned reply to: ${msg}` },
        };
      });
      client.setRequestHandler(ElicitRequestSchema, async () => {
        seen.elicitationRequests += 1;
        return {
          action: "accept",
          // `number` is a JSON number with a fraction: legal for a "type": "number" field.
          content: { name: "Ada Lovelace", check: true, integer: 7, number: 2.5 },
        };
      });
      client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => {
        seen.logs.push(n.params);
      });
    },
  });
  const { client } = state;
  const out = {};
  try {
    out.initialize = initSummary(state);
    check(out.initialize.serverInfo.name === "mcp-servers/everything", "not server-everything");
    out.ping = await client.ping();

    // The server asks for our roots ~350 ms after `initialized`, then logs what it got.
    await waitFor(() => seen.rootsRequests >= 1, "the server's roots/list request");
    await waitFor(
      () => seen.logs.some((l) => String(l.data).startsWith("Roots updated")),
      "the server's 'Roots updated' log message",
    );

    out.tools = await listAllTools(client);
    const toolNames = out.tools.map((t) => t.name);
    for (const t of ["echo", "get-sum", "trigger-long-running-operation", "trigger-sampling-request"]) {
      check(toolNames.includes(t), `tools/list lacks ${t}`);
    }

    const echo = await client.callTool({ name: "echo", arguments: { message: "hello through the guard ✓" } });
    check(textOf(echo) === "Echo: hello through the guard ✓", `echo returned ${JSON.stringify(echo)}`);
    out.echo = echo;

    out.sum = await client.callTool({ name: "get-sum", arguments: { a: 19, b: 23.5 } });
    check(textOf(out.sum).includes("42.5"), `get-sum returned ${JSON.stringify(out.sum)}`);

    out.structured = await client.callTool({ name: "get-structured-content", arguments: { location: "New York" } });
    check(out.structured.structuredContent, "get-structured-content returned no structuredContent");

    const image = await client.callTool({ name: "get-tiny-image", arguments: {} });
    const img = image.content.find((c) => c.type === "image");
    check(img && img.data.length > 0, "get-tiny-image returned no image");
    out.tinyImage = { mimeType: img.mimeType, dataSha256: sha256(img.data), contentTypes: image.content.map((c) => c.type) };

    // Progress notifications: 5 steps over 1 s, one notification per step, all before the result.
    let onprogress = 0;
    const long = await client.callTool(
      { name: "trigger-long-running-operation", arguments: { duration: 1, steps: 5 } },
      undefined,
      { onprogress: () => (onprogress += 1), timeout: REQUEST_TIMEOUT_MS },
    );
    check(onprogress >= 1, "the SDK delivered no progress notification");
    check(state.wireProgress.size === 1, `progress tokens seen: ${[...state.wireProgress.keys()]}`);
    const progress = [...state.wireProgress.values()][0].map(({ progressToken, ...rest }) => rest);
    check(progress.length === 5, `expected 5 progress notifications, got ${progress.length}`);
    out.longRunning = { result: long, progressNotifications: progress.length, progress };

    // Many requests in flight at once, answered out of order (the long operation finishes last).
    const concurrent = await Promise.all([
      client.callTool({ name: "trigger-long-running-operation", arguments: { duration: 0.5, steps: 2 } }),
      ...Array.from({ length: 20 }, (_, i) => client.callTool({ name: "echo", arguments: { message: `m${i}` } })),
      client.callTool({ name: "trigger-sampling-request", arguments: { prompt: "in parallel", maxTokens: 5 } }),
    ]);
    out.concurrent = concurrent.map(textOf);
    check(out.concurrent[20] === "Echo: m19", `concurrent echo 19: ${out.concurrent[20]}`);

    // Cancelling a request (notifications/cancelled): the server goes on sending progress for it
    // for a while; later requests must still work.
    const abort = new AbortController();
    let cancelledProgress = 0;
    const cancelled = client
      .callTool({ name: "trigger-long-running-operation", arguments: { duration: 0.6, steps: 3 } }, undefined, {
        signal: abort.signal,
        onprogress: () => {
          cancelledProgress += 1;
          abort.abort("test cancels after the first progress notification");
        },
      })
      .then(
        () => "completed",
        (e) => (abort.signal.aborted ? "cancelled" : `failed: ${e}`),
      );
    out.cancellation = { outcome: await cancelled };
    check(out.cancellation.outcome === "cancelled", `cancelled request: ${out.cancellation.outcome}`);
    check(cancelledProgress >= 1, "no progress before the cancellation");
    await sleep(700); // let the server finish the cancelled operation
    out.cancellation.echoAfter = textOf(await client.callTool({ name: "echo", arguments: { message: "still here" } }));

    // Server -> client requests in the middle of a tools/call.
    out.sampling = await client.callTool({
      name: "trigger-sampling-request",
      arguments: { prompt: "say hi", maxTokens: 10 },
    });
    check(textOf(out.sampling).includes("canned reply to"), "sampling result did not come back");
    out.elicitation = await client.callTool({ name: "trigger-elicitation-request", arguments: {} });
    check(textOf(out.elicitation).includes("Ada Lovelace"), "elicitation result did not come back");

    // A large payload both ways: a 1 MiB message echoed back.
    const big = "0123456789abcdef".repeat(LARGE_PAYLOAD_BYTES / 16);
    const bigEcho = await client.callTool({ name: "echo", arguments: { message: big } });
    check(textOf(bigEcho) === `Echo: ${big}`, "the 1 MiB echo came back altered");
    out.largeEcho = { bytes: big.length, resultSha256: sha256(textOf(bigEcho)) };

    // Resources.
    const resources = await client.listResources();
    out.resources = sortedBy(resources.resources, "uri");
    check(out.resources.length > 0, "resources/list is empty");
    out.resourceTemplates = sortedBy((await client.listResourceTemplates()).resourceTemplates, "uriTemplate");
    const docUri = "demo://resource/static/document/features.md";
    check(out.resources.some((r) => r.uri === docUri), `resources/list lacks ${docUri}`);
    const doc = await client.readResource({ uri: docUri });
    check(doc.contents.length === 1 && doc.contents[0].text.length > 1000, "features.md read back short");
    out.readStatic = { uri: doc.contents[0].uri, mimeType: doc.contents[0].mimeType, textSha256: sha256(doc.contents[0].text) };
    const dyn = await client.readResource({ uri: "demo://resource/dynamic/text/1" });
    const dynText = dyn.contents[0].text;
    check(/created at .+$/.test(dynText), `dynamic resource text: ${dynText}`);
    out.readDynamic = { ...dyn.contents[0], text: dynText.replace(/created at .+$/, "created at <time>") };

    // Prompts and completion.
    out.prompts = sortedBy((await client.listPrompts()).prompts, "name");
    out.simplePrompt = await client.getPrompt({ name: "simple-prompt" });
    out.argsPrompt = await client.getPrompt({ name: "args-prompt", arguments: { city: "Lyon", state: "Rhône" } });
    check(JSON.stringify(out.argsPrompt).includes("Lyon"), "args-prompt did not use its argument");
    out.completion = await client.complete({
      ref: { type: "ref/prompt", name: "completable-prompt" },
      argument: { name: "department", value: "E" },
    });

    // An error result must come back as a JSON-RPC error, untouched.
    try {
      await client.readResource({ uri: "demo://resource/dynamic/text/0" });
      throw new Error("reading resource id 0 should fail");
    } catch (e) {
      check(typeof e.code === "number", `expected a JSON-RPC error, got ${e}`);
      out.readError = { code: e.code };
    }

    out.serverToClient = {
      rootsRequests: seen.rootsRequests,
      samplingRequests: seen.samplingRequests,
      elicitationRequests: seen.elicitationRequests,
      rootsLog: seen.logs.filter((l) => String(l.data).startsWith("Roots updated")),
    };
    return out;
  } finally {
    await client.close();
  }
}

async function filesystem(args) {
  if (!args.dir) usage("the filesystem scenario needs --dir DIR (the server's allowed directory)");
  // No roots capability: the server would replace its allowed directories with our roots.
  const state = await connect(args);
  const { client } = state;
  try {
    const out = { initialize: initSummary(state) };
    out.tools = (await listAllTools(client)).map((t) => t.name);
    const allowed = await client.callTool({ name: "list_allowed_directories", arguments: {} });
    check(textOf(allowed).includes(args.dir), `allowed directories lack ${args.dir}: ${textOf(allowed)}`);
    out.allowed = textOf(allowed).replaceAll(args.dir, "<dir>");
    const path = `${args.dir}/hello.txt`;
    const body = "first line\nsecond line ✓\n";
    const write = await client.callTool({ name: "write_file", arguments: { path, content: body } });
    check(!write.isError, `write_file failed: ${textOf(write)}`);
    out.write = textOf(write).replaceAll(args.dir, "<dir>");
    const read = await client.callTool({ name: "read_text_file", arguments: { path } });
    check(textOf(read) === body, `read_text_file returned ${JSON.stringify(textOf(read))}`);
    out.read = textOf(read);
    const list = await client.callTool({ name: "list_directory", arguments: { path: args.dir } });
    out.list = textOf(list);
    const outside = await client.callTool({ name: "read_text_file", arguments: { path: "/etc/hostname" } });
    check(outside.isError, "reading outside the allowed directory succeeded");
    out.outsideIsError = true;
    return out;
  } finally {
    await client.close();
  }
}

async function memory(args) {
  const state = await connect(args);
  const { client } = state;
  try {
    const out = { initialize: initSummary(state) };
    out.tools = (await listAllTools(client)).map((t) => t.name);
    out.create = await client.callTool({
      name: "create_entities",
      arguments: { entities: [{ name: "mcp-guard", entityType: "program", observations: ["relays JSON-RPC"] }] },
    });
    out.graph = await client.callTool({ name: "read_graph", arguments: {} });
    check(JSON.stringify(out.graph).includes("relays JSON-RPC"), "read_graph lacks the created entity");
    return out;
  } finally {
    await client.close();
  }
}

const SCENARIOS = { basic, everything, filesystem, memory };

// ---------------------------------------------------------------------------------------------

const args = parseArgs(process.argv.slice(2));
const timer = setTimeout(() => fail(`scenario ${args.scenario} did not finish within ${OVERALL_TIMEOUT_MS} ms`), OVERALL_TIMEOUT_MS);
timer.unref();
try {
  const doc = await SCENARIOS[args.scenario](args);
  process.stdout.write(JSON.stringify({ driver: "ts", scenario: args.scenario, ...doc }, null, 2) + "\n");
  clearTimeout(timer);
  process.exit(0);
} catch (e) {
  fail(`scenario ${args.scenario} against ${JSON.stringify(args.cmd)}: ${e && e.stack ? e.stack : e}`);
}
