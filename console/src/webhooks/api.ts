/** The webhook calls (admin API `/api/v1/webhooks`) and their shapes, as admin_api/routes/webhooks.py
 * answers them. PATCH sends the version read back as If-Match; problems come back as `ApiError`. */
import { request } from "../api";

/** agent_configs/cloudevents.py `EventType`: the API refuses any other (422 at `event_types.N`). */
export const EVENT_TYPES = [
  "agent.created",
  "agent.updated",
  "agent.paused",
  "agent.resumed",
  "agent.archived",
  "agent.rolled_back",
  "agent.activated",
  "agent.gate_overridden",
  "routing.updated",
  "session.started",
  "turn.completed",
  "session.handoff",
  "session.escalated",
  "session.ended",
  "session.aborted",
  "webhook.test",
  "eval.completed",
  "message.received",
  "message.processed",
  "message.failed",
] as const;
export const ALL_EVENTS = "*";

export type SubscriptionStatus = "enabled" | "paused";
export type DeliveryStatus = "pending" | "delivered" | "failed";

export interface SigningSecret {
  kind: "generated" | "env";
  prefix: string | null;
  env: string | null;
  valid_until: string | null;
}

export interface LastDelivery {
  status: DeliveryStatus;
  event_type: string | null;
  created_at: string;
  delivered_at: string | null;
  last_status: number | null;
  last_error: string | null;
}

export interface Subscription {
  id: string;
  url: string;
  description: string;
  event_types: string[];
  agent_ids: string[] | null;
  status: SubscriptionStatus;
  signing_secret: SigningSecret;
  previous_signing_secret: SigningSecret | null;
  created_at: string;
  updated_at: string;
  version: number;
  last_delivery: LastDelivery | null;
}

/** Create and rotate-secret answers: `secret` is the generated one, shown this once. */
export interface SubscriptionWithSecret extends Subscription {
  secret: string | null;
}

export interface Delivery {
  id: string;
  event_id: string;
  event_type: string | null;
  status: DeliveryStatus;
  attempts: number;
  last_error: string | null;
  last_status: number | null;
  last_response_ms: number | null;
  next_attempt_at: string | null;
  created_at: string;
  delivered_at: string | null;
}

interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

export interface SubscriptionDraft {
  url: string;
  description: string;
  event_types: string[];
  agent_ids: string[] | null;
  status?: SubscriptionStatus;
  secret_env?: string;
}

const path = (id: string, ...rest: string[]) => ["webhooks", encodeURIComponent(id), ...rest].join("/");
const etag = (version: number) => `"${version}"`;

export async function listSubscriptions(): Promise<Subscription[]> {
  const all: Subscription[] = [];
  let cursor: string | null = null;
  do {
    const page: Page<Subscription> = (await request<Page<Subscription>>("GET", "webhooks", { query: { limit: 200, cursor } })).body;
    all.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor);
  return all;
}

export const getSubscription = (id: string) => request<Subscription>("GET", path(id)).then((r) => r.body);

export const createSubscription = (draft: SubscriptionDraft) =>
  request<SubscriptionWithSecret>("POST", "webhooks", { body: draft }).then((r) => r.body);

export const updateSubscription = (current: Subscription, changes: Partial<SubscriptionDraft>) =>
  request<Subscription>("PATCH", path(current.id), { body: changes, ifMatch: etag(current.version) }).then((r) => r.body);

export const deleteSubscription = (id: string) => request<null>("DELETE", path(id));

export const rotateSecret = (id: string, graceS: number) =>
  request<SubscriptionWithSecret>("POST", path(id, "rotate-secret"), { body: { grace_s: graceS } }).then((r) => r.body);

export const sendTestEvent = (id: string) =>
  request<{ event_id: string; subscription_id: string }>("POST", path(id, "test")).then((r) => r.body);

export const listDeliveries = (id: string, status: DeliveryStatus | "", limit: number, cursor: string | null = null) =>
  request<Page<Delivery>>("GET", path(id, "deliveries"), { query: { status, limit, cursor } }).then((r) => r.body);

export const redeliver = (id: string, deliveryId: string) =>
  request<Delivery>("POST", path(id, "deliveries", encodeURIComponent(deliveryId), "redeliver")).then((r) => r.body);

export const redeliverFailed = (id: string) =>
  request<{ redelivered: number }>("POST", path(id, "redeliver-failed")).then((r) => r.body);
