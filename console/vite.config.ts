import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { createRequire } from "node:module";
import { defineConfig, type Plugin } from "vite";
import react from "@vitejs/plugin-react";

const require = createRequire(import.meta.url);

/** The API's /docs page loads Swagger UI from these files (served at /console/swagger/):
 * FastAPI's default page loads them from a CDN, and is blank offline. */
function swaggerAssets(): Plugin {
  const files = ["swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"];
  let outDir = "dist";
  return {
    name: "switchboard-swagger-assets",
    apply: "build",
    configResolved(config) {
      outDir = resolve(config.root, config.build.outDir);
    },
    closeBundle() {
      const source = dirname(require.resolve("swagger-ui-dist/package.json"));
      const target = join(outDir, "swagger");
      mkdirSync(target, { recursive: true });
      for (const file of files) copyFileSync(join(source, file), join(target, file));
    },
  };
}

export default defineConfig({
  base: "/console/",
  plugins: [react(), swaggerAssets()],
  build: { outDir: "dist", emptyOutDir: true, chunkSizeWarningLimit: 2000 },
  server: { proxy: { "/api": "http://127.0.0.1:8000", "/openapi.json": "http://127.0.0.1:8000" } },
});
