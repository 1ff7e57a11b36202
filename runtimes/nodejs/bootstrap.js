'use strict';
/**
 * Lamina managed runtime for Node.js (nodejs<major>.x).
 *
 * Started by the execution host as
 *
 *     /usr/bin/node /var/runtime/nodejs/bootstrap.js      (cwd: /var/task)
 *
 * It loads the handler named by `_HANDLER` from `LAMBDA_TASK_ROOT` and serves invocations
 * through the Lambda Runtime API (2018-06-01) at `AWS_LAMBDA_RUNTIME_API`, following
 * shared/spec/programming-model.md and semantics.md (ERR, TO, LOGS). Built-in modules only.
 */

const fs = require('fs');
const http = require('http');
const path = require('path');
const util = require('util');
const { pathToFileURL } = require('url');

const API_PREFIX = '/2018-06-01/runtime';
const ERROR_TYPE_HEADER = 'Lambda-Runtime-Function-Error-Type';
const TASK_ROOT = process.env.LAMBDA_TASK_ROOT || '/var/task';

// ---------------------------------------------------------------------------
// Errors the runtime raises itself; their names carry AWS's `Runtime.` prefix.
// ---------------------------------------------------------------------------

function runtimeError(shortName) {
  const cls = class extends Error {};
  Object.defineProperty(cls.prototype, 'name', { value: `Runtime.${shortName}`, writable: true });
  return cls;
}
const ImportModuleError = runtimeError('ImportModuleError');
const HandlerNotFound = runtimeError('HandlerNotFound');
const MalformedHandlerName = runtimeError('MalformedHandlerName');
const UserCodeSyntaxError = runtimeError('UserCodeSyntaxError');
const UnhandledPromiseRejection = runtimeError('UnhandledPromiseRejection');
const NodeJsExit = runtimeError('NodeJsExit');

function isError(value) {
  return util.types.isNativeError(value) || (value !== null && typeof value === 'object' &&
    typeof value.name === 'string' && typeof value.message === 'string' &&
    typeof value.stack === 'string');
}

/** The document posted to the Runtime API (and returned unchanged as the Invoke body). */
function errorResponse(err) {
  try {
    if (!isError(err)) return { errorMessage: String(err) };
    // Only the frame lines (a multi-line message or a SyntaxError's source excerpt precede
    // them), without the runtime's own frames. They read like the guide's example,
    // "exports.handler (/var/task/index.js:10:17)"; the log keeps the full stack.
    const frames = String(err.stack).split('\n')
      .filter((line) => /^\s+at /.test(line))
      .map((line) => line.trim().replace(/^at /, ''))
      .filter((frame) => !frame.includes(__filename) && !/(^|\()node:/.test(frame));
    return { errorType: err.name, errorMessage: err.message, stackTrace: frames };
  } catch (_) {
    return { errorMessage: util.inspect(err) };
  }
}

/** Error text for the log, as the AWS runtime writes it: a tab, then the error as JSON. */
function formatForLog(err) {
  if (!isError(err)) return '\t' + JSON.stringify(errorResponse(err));
  const expand = (_key, value) => {
    if (!(value instanceof Error)) return value;
    const stack = typeof value.stack === 'string' ? { stack: value.stack.split('\n') } : {};
    return Object.assign({ errorType: value.name, errorMessage: value.message, code: value.code },
      value, stack);
  };
  try {
    return '\t' + JSON.stringify(err, expand);
  } catch (_) {
    return '\t' + JSON.stringify(errorResponse(err));
  }
}

// ---------------------------------------------------------------------------
// Logging. console.* writes synchronously: process.stdout on a pipe may buffer inside
// Node, and the host attributes output to an invocation by whether it arrived before
// the response POST.
// ---------------------------------------------------------------------------

let currentRequestId; // undefined before the first invocation; logged as "undefined" like AWS
const sleepCell = new Int32Array(new SharedArrayBuffer(4));

function writeAll(fd, text) {
  const buf = Buffer.from(text, 'utf8');
  let offset = 0;
  while (offset < buf.length) {
    try {
      offset += fs.writeSync(fd, buf, offset, buf.length - offset);
    } catch (err) {
      // Non-blocking once user code has touched process.stdout: wait for the pipe to drain.
      if (err.code !== 'EAGAIN') return; // the stream is gone; nothing useful left to do
      Atomics.wait(sleepCell, 0, 0, 1);
    }
  }
}

function logRecord(level, args) {
  const line = `${new Date().toISOString()}\t${currentRequestId}\t${level}\t${util.format(...args)}`;
  // One record per line, as the AWS runtime does when logging to stdout.
  writeAll(1, line.replace(/\n/g, '\r') + '\n');
}

function patchConsole() {
  const levels = { log: 'INFO', info: 'INFO', warn: 'WARN', error: 'ERROR', debug: 'DEBUG',
    trace: 'TRACE', fatal: 'FATAL' };
  for (const [method, level] of Object.entries(levels)) {
    console[method] = (...args) => logRecord(level, args);
  }
}

function die(message) {
  writeAll(2, `[lamina-runtime] ${message}\n`);
  process.exit(1);
}

// ---------------------------------------------------------------------------
// Runtime API client, on kept-alive connections: a connection per call cost the host an accept,
// a handshake and a teardown per request. An idle kept-alive socket is unref'd by the agent, so
// it does not keep the event loop alive ('beforeExit' still detects an empty loop).
// ---------------------------------------------------------------------------

const apiAddress = process.env.AWS_LAMBDA_RUNTIME_API || '';
const apiHost = apiAddress.slice(0, apiAddress.lastIndexOf(':')).replace(/^\[(.*)\]$/, '$1');
const apiPort = Number(apiAddress.slice(apiAddress.lastIndexOf(':') + 1));
const apiAgent = new http.Agent({ keepAlive: true });

function apiCall(method, suffix, body, headers, retried = false) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: apiHost, port: apiPort, method, path: API_PREFIX + suffix, headers, agent: apiAgent },
      (res) => {
        const chunks = [];
        res.on('data', (chunk) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers,
          body: Buffer.concat(chunks) }));
        res.on('error', reject);
      });
    req.on('error', (err) => {
      // A kept-alive connection the host closed while idle fails on reuse: retry once, fresh.
      if (req.reusedSocket && !retried && (err.code === 'ECONNRESET' || err.code === 'EPIPE')) {
        resolve(apiCall(method, suffix, body, headers, true));
      } else {
        reject(err);
      }
    });
    req.end(body);
  });
}

async function postDocument(suffix, body, errorType) {
  const headers = { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) };
  // Header values must be printable ASCII; an exotic error name just goes without it.
  if (errorType !== undefined && /^[\x21-\x7e]+$/.test(String(errorType))) {
    headers[ERROR_TYPE_HEADER] = String(errorType);
  }
  let res;
  try {
    res = await apiCall('POST', suffix, body, headers);
  } catch (err) {
    die(`Runtime API unreachable (POST ${suffix}): ${err.message}`);
  }
  if (res.status >= 300) {
    writeAll(2, `[lamina-runtime] POST ${suffix} rejected: HTTP ${res.status} ${res.body}\n`);
  }
}

function postInitError(err) {
  const doc = errorResponse(err);
  return postDocument('/init/error', JSON.stringify(doc), doc.errorType);
}

// ---------------------------------------------------------------------------
// Handler loading (init phase)
// ---------------------------------------------------------------------------

function packageTypeIsModule(dir) {
  // The nearest package.json decides whether .js is an ES module; node_modules is a boundary.
  for (;;) {
    if (dir.endsWith(`${path.sep}node_modules`)) return false;
    const pj = path.join(dir, 'package.json');
    if (fs.existsSync(pj)) {
      try {
        return JSON.parse(fs.readFileSync(pj, 'utf8')).type === 'module';
      } catch (_) {
        return false;
      }
    }
    const parent = path.dirname(dir);
    if (parent === dir) return false;
    dir = parent;
  }
}

async function importUserModule(appRoot, moduleRoot, moduleName) {
  const base = path.resolve(appRoot, moduleRoot, moduleName);
  const importFile = (file) => import(pathToFileURL(file).href);
  if (fs.existsSync(base)) return require(base); // extensionless file or directory
  const esm = packageTypeIsModule(path.dirname(base));
  if (fs.existsSync(`${base}.js`)) return esm ? importFile(`${base}.js`) : require(`${base}.js`);
  if (fs.existsSync(`${base}.mjs`)) return importFile(`${base}.mjs`);
  if (fs.existsSync(`${base}.cjs`)) return require(`${base}.cjs`);
  // Last resort: Node's own resolution (e.g. a package under node_modules). Its failure
  // message, "Cannot find module '<name>'", is what the function's owner sees.
  return require(require.resolve(moduleName, { paths: [appRoot, path.resolve(appRoot, moduleRoot)] }));
}

/** Resolve `[dir/]file.export[.nested]` to the handler function, or throw a Runtime.* error. */
async function loadHandler(appRoot, fullHandler) {
  if (fullHandler.includes('..')) {
    throw new MalformedHandlerName(`'${fullHandler}' is not a valid handler name. ` +
      'Use absolute paths when specifying root directories in handler names.');
  }
  const base = path.basename(fullHandler);
  const moduleRoot = fullHandler.slice(0, fullHandler.length - base.length);
  const match = /^([^.]+)\.(.+)$/.exec(base);
  if (!match) throw new MalformedHandlerName(`Bad handler ${fullHandler}`);
  const [, moduleName, handlerPath] = match;

  let userModule;
  try {
    userModule = await importUserModule(appRoot, moduleRoot, moduleName);
  } catch (err) {
    if (err instanceof SyntaxError) throw new UserCodeSyntaxError(String(err));
    if (err && (err.code === 'MODULE_NOT_FOUND' || err.code === 'ERR_MODULE_NOT_FOUND')) {
      throw new ImportModuleError(String(err));
    }
    throw err; // anything else the module threw is reported as itself
  }
  const fn = handlerPath.split('.').reduce((obj, key) => obj && obj[key], userModule);
  if (!fn) throw new HandlerNotFound(`${fullHandler} is undefined or not exported`);
  if (typeof fn !== 'function') throw new HandlerNotFound(`${fullHandler} is not a function`);
  return fn;
}

// ---------------------------------------------------------------------------
// Invocations
// ---------------------------------------------------------------------------

let initialising = true;
let current = null; // the Invocation whose outcome has not been posted yet
// Runs when the event loop has drained ('beforeExit'); that is how "wait for an empty event
// loop" is detected. Our own code keeps nothing alive during an invocation, so an empty loop
// means the function's pending work is done.
let onLoopEmpty = null;

class Invocation {
  constructor(id, headers) {
    this.id = id;
    this.headers = headers;
    this.reported = false;
    this.waitForEmptyLoop = true;
  }

  /** Post the outcome once; returns the POST's promise (null if already posted). */
  report(kind, body, errorType) {
    if (this.reported) return null;
    this.reported = true;
    onLoopEmpty = null;
    if (current === this) current = null;
    return postDocument(`/invocation/${encodeURIComponent(this.id)}/${kind}`, body, errorType);
  }

  succeed(result) {
    let body;
    try {
      body = JSON.stringify(result === undefined ? null : result);
    } catch (err) {
      return this.fail(err); // e.g. a circular structure: the TypeError becomes the error
    }
    const posting = this.report('response', body === undefined ? 'null' : body);
    if (posting) posting.then(nextInvocation);
  }

  fail(err) {
    if (this.reported) return;
    console.error('Invoke Error', formatForLog(err));
    const doc = errorResponse(err);
    const posting = this.report('error', JSON.stringify(doc), doc.errorType);
    if (posting) posting.then(nextInvocation);
  }

  jsonHeader(name, label) {
    const raw = this.headers[name];
    if (raw === undefined) return undefined;
    try {
      return JSON.parse(raw);
    } catch (err) {
      throw new Error(`Cannot parse ${label} as json: ${err}`);
    }
  }

  buildContext(completion) {
    const inv = this;
    const env = process.env;
    const deadline = Number(this.headers['lambda-runtime-deadline-ms']);
    const clientContext = this.jsonHeader('lambda-runtime-client-context', 'ClientContext');
    if (clientContext && typeof clientContext === 'object' && !('Custom' in clientContext)) {
      // The guide documents `Custom` (capital C); today's key is `custom`. Offer both.
      Object.defineProperty(clientContext, 'Custom', { get() { return this.custom; } });
    }
    return {
      get callbackWaitsForEmptyEventLoop() { return inv.waitForEmptyLoop; },
      set callbackWaitsForEmptyEventLoop(value) { inv.waitForEmptyLoop = value; },
      succeed: completion.succeed,
      fail: completion.fail,
      done: completion.done,
      functionName: env.AWS_LAMBDA_FUNCTION_NAME,
      functionVersion: env.AWS_LAMBDA_FUNCTION_VERSION,
      invokedFunctionArn: this.headers['lambda-runtime-invoked-function-arn'],
      memoryLimitInMB: env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
      awsRequestId: this.id,
      logGroupName: env.AWS_LAMBDA_LOG_GROUP_NAME,
      logStreamName: env.AWS_LAMBDA_LOG_STREAM_NAME,
      identity: this.jsonHeader('lambda-runtime-cognito-identity', 'CognitoIdentity'),
      clientContext,
      getRemainingTimeInMillis: () => Math.max(deadline - Date.now(), 0),
    };
  }

  run(handler, body) {
    // Only the first of callback / succeed / fail / done (or the implicit end) counts.
    let finished = false;
    const once = (fn) => (...args) => {
      if (finished) return;
      finished = true;
      fn(...args);
    };
    const isErr = (err) => err !== undefined && err !== null;
    const finish = (err, result) => (isErr(err) ? this.fail(err) : this.succeed(result));
    const callback = once((err, result) => {
      if (isErr(err)) return this.fail(err); // errors are not held back for the event loop
      if (!this.waitForEmptyLoop) return this.succeed(result);
      onLoopEmpty = () => this.succeed(result);
    });
    // The 0.10-era methods finish at once, without waiting for the event loop (L2436-2438).
    const completion = {
      succeed: once((result) => finish(null, result)),
      fail: once((err) => finish(isErr(err) ? err : 'handled')),
      done: once(finish),
    };

    let returned;
    let settled = false;
    // A handler that neither calls back nor returns a promise ends when the loop drains, with
    // a null result. A promise still pending then can never settle, which AWS reports as an exit.
    onLoopEmpty = () => {
      if (finished) return;
      finished = true;
      if (returned && !settled) {
        this.fail(new NodeJsExit('Runtime exited without providing a reason'));
      } else {
        this.succeed(null);
      }
    };
    try {
      const event = body.length ? JSON.parse(body.toString('utf8')) : null;
      returned = handler(event, this.buildContext(completion), callback);
    } catch (err) {
      callback(err);
      return;
    }
    if (returned && typeof returned.then === 'function') {
      returned.then(
        (value) => { settled = true; completion.succeed(value); },
        (err) => { settled = true; completion.fail(err); });
    } else {
      returned = undefined;
    }
  }
}

let handler;

async function nextInvocation() {
  let res;
  try {
    res = await apiCall('GET', '/invocation/next'); // long-polls; no client-side timeout
  } catch (err) {
    die(`Runtime API unreachable (GET /invocation/next): ${err.message}`);
  }
  const id = res.headers['lambda-runtime-aws-request-id'];
  if (res.status !== 200 || !id) die(`GET /invocation/next returned HTTP ${res.status}`);

  currentRequestId = id;
  const traceId = res.headers['lambda-runtime-trace-id'];
  if (traceId) process.env._X_AMZN_TRACE_ID = traceId;
  else delete process.env._X_AMZN_TRACE_ID;

  current = new Invocation(id, res.headers);
  current.run(handler, res.body);
}

// An exception nobody caught, or a rejection nobody handled, ends the process: report it
// against whatever is in progress (init or the current invocation), then exit. The host
// replaces the sandbox.
let dying = false;
function crash(err, exitCode) {
  if (dying) return;
  dying = true;
  let posting = null;
  if (initialising) posting = postInitError(err);
  else if (current) {
    const doc = errorResponse(err);
    posting = current.report('error', JSON.stringify(doc), doc.errorType);
  }
  Promise.resolve(posting).finally(() => process.exit(exitCode));
}

async function main() {
  patchConsole();
  if (!apiHost || !apiPort) die('AWS_LAMBDA_RUNTIME_API is not set to host:port');

  process.on('uncaughtException', (err) => {
    console.error('Uncaught Exception', formatForLog(err));
    crash(err, 129);
  });
  process.on('unhandledRejection', (reason) => {
    let text;
    try { text = String(reason); } catch (_) { text = util.inspect(reason); }
    const err = new UnhandledPromiseRejection(text);
    console.error('Unhandled Promise Rejection', formatForLog(err));
    crash(err, 128);
  });
  process.on('beforeExit', () => {
    const action = onLoopEmpty;
    onLoopEmpty = null;
    if (action) action();
  });

  try {
    handler = await loadHandler(TASK_ROOT, process.env._HANDLER || '');
  } catch (err) {
    console.error('Uncaught Exception', formatForLog(err));
    if (!dying) {
      dying = true;
      await postInitError(err);
    }
    process.exit(129);
  }
  initialising = false;
  nextInvocation();
}

main();
