/** Typed messages (`lk.chat`); in a voice session too. */
import { useState, type FormEvent } from "react";

export function ChatInput({ enabled, onSend }: { enabled: boolean; onSend: (text: string) => void }) {
  const [text, setText] = useState("");
  function submit(event: FormEvent) {
    event.preventDefault();
    const message = text.trim();
    if (!message || !enabled) return;
    onSend(message);
    setText("");
  }
  return (
    <form className="pg-chat" onSubmit={submit}>
      <input
        data-testid="chat-input"
        value={text}
        onChange={(e) => setText(e.target.value)}
        placeholder={enabled ? "Type a message and press Enter" : "Join a session to type"}
        disabled={!enabled}
        aria-label="Message"
      />
      <button className="primary" type="submit" data-testid="chat-send" disabled={!enabled || !text.trim()}>
        Send
      </button>
    </form>
  );
}
