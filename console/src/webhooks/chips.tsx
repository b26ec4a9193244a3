/** Status chips: a subscription (enabled / paused) and a delivery (pending / delivered / failed). */
import type { DeliveryStatus, SubscriptionStatus } from "./api";

const DELIVERY_TONES: Record<DeliveryStatus, string> = { pending: "chip warn", delivered: "chip ok", failed: "chip bad" };

export function DeliveryChip({ status }: { status: DeliveryStatus }) {
  return (
    <span className={DELIVERY_TONES[status] ?? "chip neutral"} data-testid="delivery-status" data-status={status}>
      {status === "failed" ? "failed (dead letter)" : status}
    </span>
  );
}

export function SubscriptionChip({ status }: { status: SubscriptionStatus }) {
  return (
    <span className={status === "enabled" ? "chip ok" : "chip warn"} data-testid="webhook-status" data-status={status}>
      {status}
    </span>
  );
}
