// Render a .mn file as HTML highlighted by this extension's TextMate grammar, for the
// README screenshot (see docs/editors.md). Needs shiki: `npm install --no-save shiki`.
//
//   node scripts/render-highlight.mjs FILE [THEME] > out.html
import { readFileSync } from "node:fs";
import { createHighlighter } from "shiki";

const [file, theme = "dark-plus"] = process.argv.slice(2);
if (!file) {
  console.error("usage: node scripts/render-highlight.mjs FILE [THEME] > out.html");
  process.exit(2);
}
const grammar = JSON.parse(
  readFileSync(new URL("../syntaxes/mn.tmLanguage.json", import.meta.url), "utf8"),
);
const highlighter = await createHighlighter({
  themes: [theme],
  langs: [{ ...grammar, name: "mn" }],
});
const code = highlighter.codeToHtml(readFileSync(file, "utf8").trimEnd(), { lang: "mn", theme });
const background = highlighter.getTheme(theme).bg;
process.stdout.write(`<!doctype html>
<html><head><meta charset="utf-8"><style>
  body { margin: 0; background: ${background}; }
  pre.shiki { margin: 0; padding: 20px 24px; font: 15px/1.45 "DejaVu Sans Mono", monospace; }
</style></head><body>${code}</body></html>
`);
