/** Which colour each recorded status gets, the same in the list, the session page and charts. */
import type { BarTone } from "./BarChart";

const SESSION_TONES: Record<string, BarTone> = { active: "ok", ended: "accent", refused: "warn", aborted: "bad" };
const TURN_TONES: Record<string, BarTone> = { ok: "ok", failed: "bad", replied: "neutral" };

export const SESSION_STATUSES = ["active", "ended", "refused", "aborted"] as const;

export const sessionTone = (status: string | null | undefined): BarTone => SESSION_TONES[status ?? ""] ?? "neutral";
export const turnTone = (status: string | null | undefined): BarTone => TURN_TONES[status ?? ""] ?? "neutral";

/** The `.chip` modifier for a tone (the design system has ok / warn / bad / neutral / plain). */
export const chipClass = (tone: BarTone) => (tone === "accent" ? "chip" : tone === "user" ? "chip neutral" : `chip ${tone}`);
