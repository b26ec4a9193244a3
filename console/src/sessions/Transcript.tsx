/** A recorded transcript as a chat: the user's words on the right, the agent's on the left. */
import "./sessions.css";
import type { TranscriptLine } from "./types";

export function Transcript({ lines, dropped }: { lines: TranscriptLine[]; dropped: number }) {
  return (
    <div className="chat" data-testid="session-transcript">
      {dropped > 0 && (
        <p className="hint chat-dropped">
          {dropped} older message{dropped === 1 ? " was" : "s were"} let go to keep the record within the agent type's <code>max_transcript_chars</code>.
        </p>
      )}
      {lines.length === 0 && <p className="hint">Nothing was said in this session.</p>}
      {lines.map((line, i) => {
        const role = line.role === "user" ? "user" : "agent";
        return (
          <div key={i} className={`bubble-row ${role}`} data-testid="session-line" data-role={role} data-final="true">
            <div className="bubble">
              <span className="who">{role === "user" ? "User" : "Agent"}</span>
              <p>{line.text}</p>
            </div>
          </div>
        );
      })}
    </div>
  );
}
