/** The widget's look, inside its shadow root: the page's CSS cannot reach in, and `all:
 * initial` on the host stops the page's inherited fonts and colours at the door. Colours keep
 * at least 4.5:1 contrast (WCAG AA) on their backgrounds. */
export const WIDGET_CSS = `
:host { all: initial; }
* { box-sizing: border-box; }
.root {
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: #111827;
}
button, input { font: inherit; }
:focus-visible { outline: 3px solid #f59e0b; outline-offset: 2px; }
.launcher {
  position: fixed; right: 20px; bottom: 20px; z-index: 2147483000;
  border: 0; border-radius: 999px; padding: 12px 20px; cursor: pointer;
  background: #1d4ed8; color: #ffffff; font-weight: 600;
  box-shadow: 0 4px 14px rgba(0, 0, 0, 0.25);
}
.launcher:hover { background: #1e40af; }
.panel {
  position: fixed; right: 20px; bottom: 80px; z-index: 2147483000;
  width: min(370px, calc(100vw - 40px)); height: min(540px, calc(100vh - 110px));
  display: flex; flex-direction: column;
  background: #ffffff; border: 1px solid #d1d5db; border-radius: 12px;
  box-shadow: 0 10px 30px rgba(0, 0, 0, 0.25); overflow: hidden;
}
.panel[hidden] { display: none; }
header {
  display: flex; align-items: center; gap: 8px; padding: 10px 12px;
  background: #1d4ed8; color: #ffffff;
}
h2 { margin: 0; font-size: 16px; font-weight: 600; flex: 1; }
.close {
  border: 0; background: transparent; color: #ffffff; cursor: pointer;
  font-size: 22px; line-height: 1; padding: 2px 8px; border-radius: 6px;
}
.state { margin: 0; padding: 6px 12px; font-size: 13px; color: #374151; background: #f3f4f6; border-bottom: 1px solid #e5e7eb; }
.log { flex: 1; overflow-y: auto; padding: 12px; display: flex; flex-direction: column; gap: 8px; }
.line { margin: 0; padding: 8px 10px; border-radius: 10px; max-width: 85%; white-space: pre-wrap; overflow-wrap: anywhere; }
.line.user { align-self: flex-end; background: #1d4ed8; color: #ffffff; }
.line.agent { align-self: flex-start; background: #f3f4f6; color: #111827; }
.speaker { display: block; font-size: 12px; font-weight: 600; }
.error { margin: 0; padding: 8px 12px; background: #fef2f2; color: #991b1b; border-top: 1px solid #fecaca; font-size: 14px; }
.error:empty { display: none; }
form { display: flex; flex-wrap: wrap; gap: 6px; padding: 10px 12px; border-top: 1px solid #e5e7eb; }
label { flex-basis: 100%; font-size: 13px; font-weight: 600; color: #374151; }
input { flex: 1; min-width: 0; padding: 8px 10px; border: 1px solid #6b7280; border-radius: 8px; color: #111827; background: #ffffff; }
.send, .mic { border: 0; border-radius: 8px; padding: 8px 12px; cursor: pointer; font-weight: 600; }
.send { background: #1d4ed8; color: #ffffff; }
.mic { background: #e5e7eb; color: #111827; }
.mic[data-microphone="on"] { background: #b91c1c; color: #ffffff; }
.send:disabled { background: #6b7280; cursor: default; }
`;
