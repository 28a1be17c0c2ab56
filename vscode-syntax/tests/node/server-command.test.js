"use strict";
const assert = require("node:assert/strict");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { test } = require("node:test");
const { findCommand } = require("../../server-command");

function tempDir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), "mnlang-ext-"));
}

test("finds an executable mnc on PATH", () => {
  const dir = tempDir();
  const mnc = path.join(dir, "mnc");
  fs.writeFileSync(mnc, "#!/bin/sh\n", { mode: 0o755 });
  assert.equal(findCommand("mnc", { PATH: `/nonexistent${path.delimiter}${dir}` }, "linux"), mnc);
});

test("a file that is not executable, or no file, is not the server", () => {
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, "mnc"), "text", { mode: 0o644 });
  assert.equal(findCommand("mnc", { PATH: dir }, "linux"), null);
  assert.equal(findCommand("mnc", { PATH: "" }, "linux"), null);
});

test("an absolute path is used as it is", () => {
  const dir = tempDir();
  const mnc = path.join(dir, "my-mnc");
  fs.writeFileSync(mnc, "#!/bin/sh\n", { mode: 0o755 });
  assert.equal(findCommand(mnc, { PATH: "" }, "linux"), mnc);
  assert.equal(findCommand(path.join(dir, "missing"), { PATH: dir }, "linux"), null);
});
