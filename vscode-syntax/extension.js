// The mnlang extension: the grammar gives highlighting; when the `mnc` command is found,
// `mnc lsp` adds diagnostics and their quick fixes, hover, go to definition, references,
// rename, completion, outline and formatting. The .vsix holds this file bundled with the
// language client (dist/extension.js, `npm run bundle`).
"use strict";
const vscode = require("vscode");
const { LanguageClient, TransportKind } = require("vscode-languageclient/node");
const { findCommand } = require("./server-command");

let client = null;

async function activate(context) {
  const configured = vscode.workspace.getConfiguration("mnlang").get("server.command", "mnc");
  const command = findCommand(configured);
  if (command === null) {
    vscode.window.showInformationMessage(
      `mnlang: \`${configured}\` was not found, so .mn files get highlighting only. ` +
        "Install mnlang (`pip install mnlang`) or set `mnlang.server.command`.",
    );
    return;
  }
  client = new LanguageClient(
    "mnlang",
    "mnlang language server",
    { command, args: ["lsp"], transport: TransportKind.stdio },
    {
      documentSelector: [
        { scheme: "file", language: "mn" },
        { scheme: "untitled", language: "mn" },
      ],
    },
  );
  context.subscriptions.push({ dispose: () => client && client.stop() });
  await client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
