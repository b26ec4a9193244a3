/** A room token for the logged-in key (`POST /api/v1/token`): the page never holds a LiveKit
 * key, and whatever the key's role may not do the API refuses. */
import { ApiError, post } from "../api";
import type { RoomToken } from "../types";
import type { Metadata } from "./metadata";

export interface AgentPin {
  agent_id: string;
  version?: number;
}

export interface Minted {
  token: RoomToken;
  /** Whether the server took the `agent` pin (a version runs exactly as picked). */
  pinned: boolean;
}

/** A picked type goes both ways: `agent` pins the exact type (and version) for servers that
 * know the field (admin keys), and `metadata.agent_id` routes it through the `explicit`
 * strategy everywhere. A server that predates the pin answers 422 naming `agent` (the body
 * forbids unknown fields): then the metadata alone carries the choice. */
export async function mintRoomToken(metadata: Metadata, pin: AgentPin | null): Promise<Minted> {
  if (!pin) return { token: await post<RoomToken>("token", { metadata }), pinned: false };
  try {
    return { token: await post<RoomToken>("token", { metadata, agent: pin }), pinned: true };
  } catch (error) {
    if (!(error instanceof ApiError) || !refusesThePin(error, pin)) throw error;
    return { token: await post<RoomToken>("token", { metadata }), pinned: false };
  }
}

function refusesThePin(error: ApiError, pin: AgentPin): boolean {
  const fields = (error.problem.errors ?? []).map((e) => e.field);
  if (error.status === 422 && fields.includes("agent")) return true; // an older server: no such field
  // A key that may not pin (not an admin) still reaches the type through metadata.agent_id,
  // unless the user asked for a version: only the pin can honour that, so the refusal stands.
  return error.status === 403 && fields.some((f) => f === "agent" || f.startsWith("agent.")) && pin.version === undefined;
}
