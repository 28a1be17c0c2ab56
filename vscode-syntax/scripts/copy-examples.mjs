// Copy every example and standard library module into tests/snap/, whose snapshots
// (`npm run snap:update`) record how the grammar highlights them.
import { copyFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";

const root = new URL("../..", import.meta.url).pathname;
const target = new URL("../tests/snap/", import.meta.url).pathname;
const sources = [
  ...readdirSync(join(root, "examples"))
    .map((dir) => join(root, "examples", dir))
    .filter((dir) => statSync(dir).isDirectory())
    .flatMap((dir) => readdirSync(dir).filter((f) => f.endsWith(".mn")).map((f) => join(dir, f))),
  ...readdirSync(join(root, "stdlib"))
    .filter((f) => f.endsWith(".mn"))
    .map((f) => join(root, "stdlib", f)),
];
for (const source of sources) {
  copyFileSync(source, join(target, source.split("/").pop()));
  console.log(`copied ${source.slice(root.length)}`);
}
