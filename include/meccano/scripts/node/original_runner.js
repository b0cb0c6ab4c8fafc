'use strict';
// Runs one of the original ServiceManager's in-process node.js plugins as it is:
//   node original_runner.js <plugin>.js
// The plugin's require('../config'), require('../mysql') and require('../aws') get the modules of
// original/ (their shapes: README, "Original node.js plugins"); then entrypoint() is called and the
// process ends once its work is done: its promise (if it returns one) settled and nothing left to do
// (callbacks, queries, timers). The Python runner (scripts/runner.py) starts this process with the
// plugin's explicit environment, relays its redacted output and enforces the time limit.
const path = require('path');
const Module = require('module');

const CLOSE = Symbol.for('meccano.close');
const SHIMS = { '../config': 'config.js', '../mysql': 'mysql.js', '../aws': 'aws.js' };

function fail(message) {
  console.error(`[meccano] ${message}`);
  process.exit(1);
}

const source = process.argv[2] && path.resolve(process.argv[2]);
if (!source) fail('usage: node original_runner.js <plugin>.js');
const pluginDir = path.dirname(source);

const resolve = Module._resolveFilename;
Module._resolveFilename = function (request, parent, ...rest) {
  if (Object.prototype.hasOwnProperty.call(SHIMS, request) && parent && parent.filename
      && path.dirname(parent.filename) === pluginDir) {
    return path.join(__dirname, 'original', SHIMS[request]);
  }
  return resolve.call(this, request, parent, ...rest);
};

process.on('uncaughtException', (err) => fail(`the plugin failed: ${(err && err.stack) || err}`));
process.on('unhandledRejection', (err) => fail(`the plugin failed (a rejected promise): ${(err && err.stack) || err}`));

const plugin = require(source);
if (!plugin || typeof plugin.entrypoint !== 'function') {
  fail(`${path.basename(source)} does not export entrypoint(); an original in-process plugin sets `
       + 'exports.entrypoint = function () { ... }');
}

let settled = true;
const result = plugin.entrypoint();
if (result && typeof result.then === 'function') {
  settled = false;
  result.then(() => { settled = true; }, (err) => fail(`entrypoint() failed: ${(err && err.stack) || err}`));
}

let closed = false;
process.on('beforeExit', () => {
  // Nothing is left to do: close what the modules opened (an idle pool connection), once.
  if (closed) return;
  closed = true;
  if (!settled) {
    console.error('[meccano] entrypoint() returned a promise that never settled, and nothing is left to do');
    process.exitCode = 1;
  }
  for (const name of Object.values(SHIMS)) {
    const loaded = require.cache[path.join(__dirname, 'original', name)];
    const close = loaded && loaded.exports && loaded.exports[CLOSE];
    if (typeof close === 'function') close();
  }
});
