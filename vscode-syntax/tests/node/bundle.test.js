"use strict";
// The bundled client (dist/extension.js, what the .vsix holds) loads with nothing beside it
// but VS Code's `vscode` module, and without an `mnc` it offers highlighting only.
const assert = require("node:assert/strict");
const Module = require("node:module");
const path = require("node:path");
const { test } = require("node:test");

const BUNDLE = path.join(__dirname, "..", "..", "dist", "extension.js");

// VS Code's API as far as loading and activating without a server use it; anything else
// the client names at load time (classes it extends, enums) is a stand-in class.
function standIn(given) {
  const handler = {
    get: (target, name) => (name in target ? target[name] : new Proxy(class {}, handler)),
  };
  return new Proxy(given, handler);
}

function withVscode(vscode, load) {
  const original = Module._load;
  Module._load = function (request, ...rest) {
    if (request === "vscode") return vscode;
    if (!request.startsWith("node:") && !Module.isBuiltin(request) && request !== BUNDLE) {
      throw new Error(`the bundle requires ${request}, which the .vsix does not hold`);
    }
    return original.call(this, request, ...rest);
  };
  try {
    delete require.cache[BUNDLE];
    return load();
  } finally {
    Module._load = original;
  }
}

test("the bundle needs only vscode and node's own modules", () => {
  const messages = [];
  const vscode = standIn({
    workspace: { getConfiguration: () => ({ get: () => "/nonexistent/mnc" }) },
    window: { showInformationMessage: (m) => messages.push(m) },
  });
  const ext = withVscode(vscode, () => require(BUNDLE));
  assert.equal(typeof ext.activate, "function");
  assert.equal(typeof ext.deactivate, "function");
  return ext.activate({ subscriptions: [] }).then(() => {
    assert.equal(messages.length, 1);
    assert.match(messages[0], /`\/nonexistent\/mnc` was not found/);
    assert.equal(ext.deactivate(), undefined);
  });
});
