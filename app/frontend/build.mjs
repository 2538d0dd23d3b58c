// Builds Beacon's browser assets into app/static/dist/: bundled and minified by esbuild, each file named
// name.<hash>.ext after a SHA-256 of its content (hex, which Nginx's long-cache location matches), plus
// manifest.json mapping source names to built ones for the api's asset() template function.
//
//   node app/frontend/build.mjs        (run by `make assets`)
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, extname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const staticDir = join(root, "app", "static");
const out = join(staticDir, "dist");

// Source name (as templates ask for it) -> entry file. Bundles from app/frontend/, plain files from app/static/.
const entries = {
  "dashboard.js": join(root, "app", "frontend", "dashboard.js"),
  "dashboard.css": join(root, "app", "frontend", "dashboard.css"),
  "css/beacon.css": join(staticDir, "css", "beacon.css"),
};
for (const name of readdirSync(join(staticDir, "js")).sort()) {
  if (name.endsWith(".js")) entries[`js/${name}`] = join(staticDir, "js", name);
}
// Files already built by their package, copied as they are (fingerprinted like the rest): Swagger UI for
// /api/docs, served from here because Beacon's CSP allows no CDN.
const swaggerUi = join(root, "app", "frontend", "node_modules", "swagger-ui-dist");
const copies = {
  "swagger-ui/swagger-ui-bundle.js": join(swaggerUi, "swagger-ui-bundle.js"),
  "swagger-ui/swagger-ui.css": join(swaggerUi, "swagger-ui.css"),
};

async function bundle(entry) {
  const result = await esbuild.build({
    entryPoints: [entry],
    bundle: true,
    minify: true,
    write: false,
    format: extname(entry) === ".js" ? "iife" : undefined,
    target: "es2020",
    legalComments: "eof",
    logLevel: "warning",
    outdir: out,
  });
  if (result.outputFiles.length !== 1) throw new Error(`${entry}: expected one output file`);
  return result.outputFiles[0].contents;
}

const staging = `${out}.tmp-${process.pid}`;
rmSync(staging, { recursive: true, force: true });
const manifest = {};
try {
  const sources = [
    ...Object.entries(entries).map(([name, entry]) => [name, () => bundle(entry)]),
    ...Object.entries(copies).map(([name, file]) => [name, async () => readFileSync(file)]),
  ];
  for (const [name, load] of sources) {
    const contents = await load();
    const hash = createHash("sha256").update(contents).digest("hex").slice(0, 12);
    const ext = extname(name);
    const built = join(dirname(name), `${basename(name, ext)}.${hash}${ext}`).replace(/^\.\//, "");
    mkdirSync(join(staging, dirname(built)), { recursive: true });
    writeFileSync(join(staging, built), contents);
    manifest[name] = built;
  }
  writeFileSync(join(staging, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
  // Swap the whole directory, so a running server never sees a half-written build (and the old files are
  // gone only after the new ones are in place).
  const old = `${out}.old-${process.pid}`;
  if (existsSync(out)) renameSync(out, old);
  renameSync(staging, out);
  rmSync(old, { recursive: true, force: true });
} catch (error) {
  rmSync(staging, { recursive: true, force: true });
  throw error;
}
console.log(`built ${Object.keys(manifest).length} assets into ${out}`);
