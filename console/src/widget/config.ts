/** What the embedding page asked for, read from the widget's own <script> tag:
 *
 *   <script src="https://api.example/widget.js" data-key="pk_..." data-purpose="support" async></script>
 *
 * data-key (required): the widget binding's publishable key; data-purpose or data-agent-id:
 * what to talk to (the binding's own target when absent); data-title: the launcher's and the
 * panel's name; data-modality="voice": start with the microphone rather than as a text chat.
 * The API is the origin the script came from. */

export interface WidgetConfig {
  apiBase: string;
  key: string;
  purpose: string | null;
  agentId: string | null;
  title: string;
  startWithVoice: boolean;
}

const DEFAULT_TITLE = "Chat with us";

/** The script element that loaded this bundle. `document.currentScript` is set while a classic
 * script runs (async ones too); the selector is the fallback for a loader that injects it. */
export function ownScript(): HTMLScriptElement | null {
  const current = document.currentScript;
  if (current instanceof HTMLScriptElement) return current;
  return document.querySelector<HTMLScriptElement>('script[data-key][src*="widget.js"]');
}

export function readConfig(script: HTMLScriptElement | null): WidgetConfig | string {
  if (!script) return "The chat widget could not find its <script> tag.";
  const key = script.dataset.key?.trim();
  if (!key) return 'The chat widget needs its publishable key: data-key="pk_..." on its <script> tag.';
  return {
    apiBase: new URL(script.src, document.baseURI).origin,
    key,
    purpose: script.dataset.purpose?.trim() || null,
    agentId: script.dataset.agentId?.trim() || null,
    title: script.dataset.title?.trim() || DEFAULT_TITLE,
    startWithVoice: script.dataset.modality === "voice",
  };
}
