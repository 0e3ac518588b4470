// Starts `netevo lsp` for .net files. The server does all the work; see docs/editors.md.
const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const config = vscode.workspace.getConfiguration("netevo");
  const [command, ...args] = config.get("command", ["netevo", "lsp"]);
  client = new LanguageClient(
    "netevo",
    "netevo language server",
    { command, args },
    {
      documentSelector: [{ scheme: "file", language: "netevo" }],
      initializationOptions: { defines: config.get("defines", {}) },
    }
  );
  context.subscriptions.push(client);
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
