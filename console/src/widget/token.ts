/** A room token from the admin API's POST /api/v1/widget/token, and the visitor-facing words
 * for each way it can be refused. */
import type { WidgetConfig } from "./config";

export type Modality = "text" | "voice";

export interface RoomToken {
  server_url: string;
  token: string;
  room: string;
  identity: string;
}

export class TokenRefused extends Error {}

const KEY_HEADER = "Switchboard-Publishable-Key";
export const REFUSED_ORIGIN = "This site is not allowed to use this chat.";

export async function fetchToken(config: WidgetConfig, modality: Modality): Promise<RoomToken> {
  const body: Record<string, string> = { modality };
  if (config.purpose) body.purpose = config.purpose;
  else if (config.agentId) body.agent_id = config.agentId;
  let response: Response;
  try {
    response = await fetch(`${config.apiBase}/api/v1/widget/token`, {
      method: "POST",
      headers: { "Content-Type": "application/json", [KEY_HEADER]: config.key },
      body: JSON.stringify(body),
      credentials: "omit",
    });
  } catch {
    throw new TokenRefused(await unreadableFailure(config));
  }
  if (response.ok) return (await response.json()) as RoomToken;
  let problem: { type?: string; detail?: string } = {};
  try {
    problem = await response.json();
  } catch {
    // not a problem document: the status says enough
  }
  throw new TokenRefused(describe(response, problem.type ?? ""));
}

function describe(response: Response, type: string): string {
  if (type.endsWith(":origin-refused")) return REFUSED_ORIGIN;
  if (type.endsWith(":widget-key-refused")) return "This chat is not available right now.";
  if (type.endsWith(":widget-target-refused")) return "This chat is not set up for this page.";
  if (response.status === 429) {
    const wait = response.headers.get("Retry-After");
    return `Too many chats were started from here. Try again${wait ? ` in ${wait} seconds` : " soon"}.`;
  }
  return `The chat could not start (error ${response.status}).`;
}

/** A fetch that fails without an answer: the network, or a browser that refused the answer
 * because the API did not allow this page's origin (CORS hides which from scripts). The
 * script itself came from the API, so if it still answers for the script (which any origin
 * may read), the API is up and the refusal was this page's origin. */
async function unreadableFailure(config: WidgetConfig): Promise<string> {
  try {
    const probe = await fetch(`${config.apiBase}/widget.js`, { method: "HEAD", credentials: "omit", cache: "no-store" });
    if (probe.ok) return REFUSED_ORIGIN;
  } catch {
    // unreachable too
  }
  return "The chat service cannot be reached. Check your connection and try again.";
}
