/** The website widget (src/widget): one self-contained IIFE script, dist/widget.js, that any
 * page can embed with a <script> tag; the admin API serves it at /widget.js. Built after the
 * console (`npm run build`), into the same dist/ without emptying it. */
import { defineConfig } from "vite";

export default defineConfig({
  publicDir: false,
  // A library build leaves process.env.NODE_ENV for a bundler that never comes: a page has none.
  define: { "process.env.NODE_ENV": JSON.stringify("production") },
  build: {
    outDir: "dist",
    emptyOutDir: false,
    copyPublicDir: false,
    chunkSizeWarningLimit: 2000,
    lib: {
      entry: "src/widget/main.ts",
      name: "SwitchboardWidget",
      formats: ["iife"],
      fileName: () => "widget.js",
    },
  },
});
