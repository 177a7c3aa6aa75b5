// A scriptable MCP stdio server for mcp_test.cpp: the behaviours real servers show rarely or
// never on demand (pagination, server->client requests, JSON-RPC errors, oversized responses,
// dying mid-call).
//
//   node fake_mcp_server.mjs <mode> [<mode on later starts>]
//
// Modes: normal | exit-on-call (answers initialize and tools/list, exits on tools/call) |
// exit-at-start | silent (never answers) | bad-version (answers initialize with 1999-01-01).
//
// With $FAKE_MCP_STARTS_FILE set, every start first appends its pid and a newline to that file
// (so tests count the processes started and tell them apart); the start whose line is the n-th
// is start n. The second mode, if given, applies from start 2 on (a server that fails to
// restart). Start n also has a tool "start-<n>" (listed last) returning "start <n>".
//
// Tools in normal mode:
//   echo {message}  -> text message          slow {ms, message} -> text message after ms
//   meta            -> text JSON of _meta    huge {bytes}        -> text of `bytes` x's
//   ask             -> sends the client a ping and a sampling/createMessage request and reports
//                      the answers: "ping=<result JSON> sampling=<error code>"
//   seen            -> text JSON of the notification methods received so far
//   fail            -> isError result        pid                 -> text of its pid
//   crash           -> writes "fake server: crashing on request" to stderr and exits (status 4)
//   anything else   -> JSON-RPC error -32602
import fs from 'node:fs';
import process from 'node:process';
import readline from 'node:readline';

const startsFile = process.env.FAKE_MCP_STARTS_FILE;
let startNumber = 0;
if (startsFile) {
  fs.appendFileSync(startsFile, `${process.pid}\n`);
  startNumber = fs.readFileSync(startsFile, 'utf8').split('\n').filter((l) => l !== '').length;
}
const mode = (startNumber > 1 ? process.argv[3] : undefined) ?? process.argv[2] ?? 'normal';
const seen = [];
let initialized = false;
let nextServerId = 1;
const waitingForClient = new Map();  // our request id -> resolve

function send(message) {
  process.stdout.write(JSON.stringify(message) + '\n');
}

function result(id, value) {
  send({jsonrpc: '2.0', id, result: value});
}

function text(id, value, isError = false) {
  const body = {content: [{type: 'text', text: value}]};
  if (isError) body.isError = true;
  result(id, body);
}

function askClient(method, params) {
  const id = `srv-${nextServerId++}`;
  send({jsonrpc: '2.0', id, method, params});
  return new Promise((resolve) => waitingForClient.set(id, resolve));
}

// Three pages: a, b | c, d | e.
const pages = {
  '': {tools: ['a', 'b'], next: 'page-2'},
  'page-2': {tools: ['c', 'd'], next: 'page-3'},
  'page-3': {tools: ['e'], next: undefined},
};

function tool(name) {
  return {
    name,
    description: `tool ${name}`,
    inputSchema: {type: 'object', properties: {message: {type: 'string'}}},
  };
}

async function callTool(id, params) {
  const args = params.arguments ?? {};
  switch (params.name) {
    case 'echo':
      return text(id, args.message);
    case 'slow':
      setTimeout(() => text(id, args.message), args.ms);
      return;
    case 'meta':
      return text(id, JSON.stringify(params._meta ?? null));
    case 'huge':
      // Keys in this order put the id last, as the TypeScript SDK does.
      return send({result: {content: [{type: 'text', text: 'x'.repeat(args.bytes)}]},
                   jsonrpc: '2.0', id});
    case 'ask': {
      send({jsonrpc: '2.0', method: 'notifications/progress', params: {progress: 1}});
      const ping = await askClient('ping', {});
      const sampling = await askClient('sampling/createMessage', {messages: [], maxTokens: 1});
      const pingText = 'result' in ping ? JSON.stringify(ping.result) : 'error';
      const samplingText = 'error' in sampling ? String(sampling.error.code) : 'result';
      return text(id, `ping=${pingText} sampling=${samplingText}`);
    }
    case 'seen':
      return text(id, JSON.stringify(seen));
    case 'fail':
      return text(id, 'it went wrong', true);
    case 'pid':
      return text(id, String(process.pid));
    case 'crash':
      process.stderr.write('fake server: crashing on request\n', () => process.exit(4));
      return;
    case `start-${startNumber}`:
      if (startNumber > 0) return text(id, `start ${startNumber}`);
      // fall through
    default:
      return send({jsonrpc: '2.0', id, error: {code: -32602, message: `Unknown tool: ${params.name}`}});
  }
}

function handle(message) {
  if (message.method === undefined) {  // a response to one of our requests
    const resolve = waitingForClient.get(message.id);
    waitingForClient.delete(message.id);
    if (resolve) resolve(message);
    return;
  }
  if (message.id === undefined) {  // a notification
    seen.push(message.method);
    if (message.method === 'notifications/initialized') initialized = true;
    return;
  }
  const {id, method} = message;
  const params = message.params ?? {};
  if (mode === 'silent') return;
  if (method === 'initialize') {
    // Noise a client must survive: a notification and a line that is not JSON.
    send({jsonrpc: '2.0', method: 'notifications/message', params: {level: 'info', data: 'hi'}});
    process.stdout.write('this line is not JSON\n');
    return result(id, {
      protocolVersion: mode === 'bad-version' ? '1999-01-01' : params.protocolVersion,
      capabilities: {tools: {}},
      serverInfo: {name: 'fake', version: '1.0.0'},
    });
  }
  if (!initialized) {
    return send({jsonrpc: '2.0', id, error: {code: -32600, message: 'not initialized'}});
  }
  if (method === 'tools/list') {
    const page = pages[params.cursor ?? ''];
    if (!page) return send({jsonrpc: '2.0', id, error: {code: -32602, message: 'bad cursor'}});
    const body = {tools: page.tools.map(tool)};
    if (!page.next && startNumber > 0) body.tools.push(tool(`start-${startNumber}`));
    if (page.next) body.nextCursor = page.next;
    return result(id, body);
  }
  if (method === 'tools/call') {
    if (mode === 'exit-on-call') {
      process.stderr.write(`fatal: cannot run ${params.name}: the fake server gave up\n`);
      process.exit(3);
    }
    return callTool(id, params);
  }
  send({jsonrpc: '2.0', id, error: {code: -32601, message: `Method not found: ${method}`}});
}

if (mode === 'exit-at-start') {
  process.stderr.write('fake server: missing configuration, exiting\n');
  process.exit(1);
}
const lines = readline.createInterface({input: process.stdin});
lines.on('line', (line) => {
  if (line.trim() !== '') handle(JSON.parse(line));
});
