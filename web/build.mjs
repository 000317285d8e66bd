// `make web`: bundles each page's script (and the npm packages it imports)
// into dist/assets/, and copies the pages and the style sheet to dist/, which
// the gateway serves (FOODFAST_GATEWAY_WEB_DIR).

import { cpSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const web = dirname(fileURLToPath(import.meta.url));
const dist = join(web, "dist");
const PAGES = ["track", "dashboard"];

rmSync(dist, { recursive: true, force: true });
mkdirSync(join(dist, "assets"), { recursive: true });
await build({
  entryPoints: PAGES.map((page) => join(web, "src", `${page}.js`)),
  outdir: join(dist, "assets"),
  bundle: true,
  format: "iife",
  target: "es2022",
  minify: true,
  sourcemap: false,
  logLevel: "warning",
});
for (const file of ["index.html", ...PAGES.map((page) => `${page}.html`), "style.css"]) {
  cpSync(join(web, file), join(dist, file));
}
