/** The channel a session came in by (`channel` on its record): kind and binding, linked to the
 * binding's page. Nothing for a session of a LiveKit client of its own. */
import { href } from "../router";
import type { SessionChannel } from "./types";

export function ChannelLabel({ channel }: { channel: SessionChannel | null | undefined }) {
  if (!channel) return null;
  return (
    <a className="chip neutral session-channel" href={href("channels", channel.binding_id)} onClick={(e) => e.stopPropagation()} data-testid="session-channel" data-kind={channel.kind} data-binding-id={channel.binding_id}>
      {channel.kind} · {channel.binding_id}
    </a>
  );
}
