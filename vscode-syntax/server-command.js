// Where the language server's command lives: an absolute path as configured, or the
// first match on PATH (with PATHEXT's extensions on Windows). Null when there is none,
// and the extension then offers highlighting only.
"use strict";
const fs = require("node:fs");
const path = require("node:path");

function isExecutable(file) {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

function findCommand(command, env = process.env, platform = process.platform) {
  if (path.isAbsolute(command)) {
    return isExecutable(command) ? command : null;
  }
  const extensions =
    platform === "win32" ? ["", ...(env.PATHEXT || ".EXE;.CMD;.BAT").split(";")] : [""];
  for (const dir of (env.PATH || "").split(path.delimiter)) {
    if (!dir) continue;
    for (const ext of extensions) {
      const candidate = path.join(dir, command + ext);
      if (isExecutable(candidate)) return candidate;
    }
  }
  return null;
}

module.exports = { findCommand };
