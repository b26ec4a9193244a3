/** widget.js: the website widget, as one script a page embeds (README "Website widget").
 *
 *   <script src="https://api.example/widget.js" data-key="pk_..." data-purpose="support" async></script>
 *
 * Built by `npm run build` (vite.widget.config.ts) into dist/widget.js, one self-contained
 * file (livekit-client included), served by the admin API at /widget.js. */
import { ownScript, readConfig } from "./config";
import { mountWidget } from "./panel";

// Read while this script runs: document.currentScript is null once it has finished.
const config = readConfig(ownScript());
const flags = window as unknown as { __switchboardWidget?: boolean };

if (typeof config === "string") {
  console.error(`Switchboard widget: ${config}`);
} else if (!flags.__switchboardWidget) {
  flags.__switchboardWidget = true; // one widget per page, even if the tag is there twice
  const mount = () => mountWidget(config);
  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount, { once: true });
}
