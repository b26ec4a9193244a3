/** The widget's markup: a launcher button and a chat panel in a shadow root on the page.
 *
 * For keyboard and screen-reader users: the launcher says whether the panel is open
 * (aria-expanded) and which it opens; the panel is a non-modal dialog named by its title;
 * the transcript is a polite live log (new replies are read out) that the keyboard can
 * scroll; the message box has a visible label; the agent's state is words, not a colour;
 * Escape closes the panel and the focus goes back to the launcher; errors are an alert. */
import { WidgetChat, type ChatView } from "./chat";
import type { WidgetConfig } from "./config";
import { WIDGET_CSS } from "./styles";

const HOST_ID = "switchboard-widget";
const MAX_MESSAGE_CHARS = 4000;

const AGENT_STATES: Record<string, string> = {
  initializing: "The agent is getting ready…",
  listening: "The agent is listening",
  thinking: "The agent is thinking…",
  speaking: "The agent is speaking",
};

function element<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Record<string, string> = {},
  text?: string,
): HTMLElementTagNameMap[K] {
  const created = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) created.setAttribute(name, value);
  if (text !== undefined) created.textContent = text;
  return created;
}

export function mountWidget(config: WidgetConfig): void {
  const host = element("div", { id: HOST_ID });
  const shadow = host.attachShadow({ mode: "open" });
  adoptStyles(shadow);

  const root = element("section", { class: "root", "aria-label": config.title });
  const launcher = element(
    "button",
    { type: "button", class: "launcher", "aria-expanded": "false", "aria-controls": "sb-panel", "data-testid": "widget-launcher" },
    config.title,
  );
  const panel = element("div", { id: "sb-panel", class: "panel", role: "dialog", "aria-labelledby": "sb-title", "data-testid": "widget-panel" });
  panel.hidden = true;

  const header = element("header");
  const title = element("h2", { id: "sb-title" }, config.title);
  const close = element("button", { type: "button", class: "close", "aria-label": "Close chat", "data-testid": "widget-close" }, "×");
  header.append(title, close);

  const state = element("p", { class: "state", "data-testid": "widget-agent-state" });
  const log = element("div", {
    class: "log",
    role: "log",
    "aria-live": "polite",
    "aria-label": "Conversation",
    tabindex: "0",
    "data-testid": "widget-transcript",
  });
  const error = element("p", { class: "error", role: "alert", "data-testid": "widget-error" });

  const form = element("form", { "data-testid": "widget-form" });
  const label = element("label", { for: "sb-message" }, "Your message");
  const input = element("input", { id: "sb-message", type: "text", autocomplete: "off", maxlength: String(MAX_MESSAGE_CHARS), "data-testid": "widget-message" });
  const send = element("button", { type: "submit", class: "send", "data-testid": "widget-send" }, "Send");
  const mic = element("button", { type: "button", class: "mic", "data-testid": "widget-microphone" });
  form.append(label, input, send, mic);

  const audio = element("div", { hidden: "" });
  panel.append(header, state, log, error, form, audio);
  root.append(panel, launcher);
  shadow.append(root);
  document.body.appendChild(host);

  const lines = new Map<string, HTMLElement>();
  const render = (view: ChatView) => {
    state.textContent = stateText(view);
    state.dataset.state = view.agentState ?? view.phase;
    error.textContent = view.error ?? "";
    for (const line of view.transcript) {
      let shown = lines.get(line.key);
      if (!shown) {
        shown = element("p", { class: `line ${line.role}`, "data-role": line.role });
        shown.append(element("span", { class: "speaker" }, line.role === "user" ? "You" : "Agent"), document.createTextNode(""));
        lines.set(line.key, shown);
        const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
        log.appendChild(shown);
        if (atBottom) log.scrollTop = log.scrollHeight;
      }
      const words = shown.lastChild as Text;
      if (words.data !== line.text) {
        words.data = line.text;
        log.scrollTop = log.scrollHeight;
      }
    }
    send.disabled = view.phase === "connecting";
    mic.dataset.microphone = view.microphone;
    mic.textContent = view.microphone === "on" ? "Mute" : view.microphone === "muted" ? "Unmute" : "Talk";
    mic.setAttribute(
      "aria-label",
      view.microphone === "on" ? "Mute the microphone" : view.microphone === "muted" ? "Unmute the microphone" : "Talk by voice (uses the microphone)",
    );
  };
  const chat = new WidgetChat(config, render, () => audio);
  render(chat.view);

  const open = () => {
    panel.hidden = false;
    launcher.setAttribute("aria-expanded", "true");
    input.focus();
    if (chat.view.phase === "idle" && !chat.view.error) void chat.start(config.startWithVoice ? "voice" : "text");
  };
  const hide = () => {
    panel.hidden = true;
    launcher.setAttribute("aria-expanded", "false");
    launcher.focus();
  };

  launcher.addEventListener("click", () => (panel.hidden ? open() : hide()));
  close.addEventListener("click", hide);
  panel.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.preventDefault();
      hide();
    }
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    void (async () => {
      if (chat.view.phase !== "connected") await chat.start(chat.view.modality);
      if (chat.view.phase !== "connected") return; // the error says why; the text stays in the box
      input.value = "";
      await chat.send(text);
    })();
  });
  mic.addEventListener("click", () => void chat.toggleMicrophone());
  window.addEventListener("pagehide", () => void chat.leave());
}

function stateText(view: ChatView): string {
  switch (view.phase) {
    case "connecting":
      return "Connecting…";
    case "ended":
      return "The conversation ended. Send a message to start a new one.";
    case "idle":
      return view.error ? "Not connected" : "Opening the chat…";
    case "connected":
      return view.agentState ? (AGENT_STATES[view.agentState] ?? `The agent is ${view.agentState}`) : "Waiting for the agent…";
  }
}

/** Constructed stylesheets: a page whose CSP forbids inline styles still styles the widget
 * (a <style> element is the fallback for browsers without them). */
function adoptStyles(shadow: ShadowRoot) {
  if ("adoptedStyleSheets" in shadow && typeof CSSStyleSheet.prototype.replaceSync === "function") {
    const sheet = new CSSStyleSheet();
    sheet.replaceSync(WIDGET_CSS);
    shadow.adoptedStyleSheets = [sheet];
  } else {
    const style = document.createElement("style");
    style.textContent = WIDGET_CSS;
    shadow.appendChild(style);
  }
}
