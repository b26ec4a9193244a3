/** An in-page confirmation (not window.confirm: it looks like the product and a browser test
 * can click it): `confirm` with `confirm-ok` / `confirm-cancel`. */
import "./agents.css";
import { useEffect, useRef, type ReactNode } from "react";

export interface Confirmation {
  title: string;
  body: ReactNode;
  action: string;
  danger?: boolean;
  onConfirm: () => void;
}

export function ConfirmDialog({ confirmation, onClose }: { confirmation: Confirmation | null; onClose: () => void }) {
  const ok = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    if (!confirmation) return;
    ok.current?.focus();
    const onKey = (e: KeyboardEvent) => e.key === "Escape" && onClose();
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [confirmation, onClose]);
  if (!confirmation) return null;
  return (
    <div className="modal-backdrop" onClick={onClose}>
      <div className="card modal" role="dialog" aria-modal="true" aria-labelledby="confirm-title" data-testid="confirm" onClick={(e) => e.stopPropagation()}>
        <h2 id="confirm-title">{confirmation.title}</h2>
        <div className="modal-body">{confirmation.body}</div>
        <div className="actions end">
          <button type="button" onClick={onClose} data-testid="confirm-cancel">
            Cancel
          </button>
          <button
            type="button"
            ref={ok}
            className={confirmation.danger ? "primary danger-fill" : "primary"}
            data-testid="confirm-ok"
            onClick={() => {
              onClose();
              confirmation.onConfirm();
            }}
          >
            {confirmation.action}
          </button>
        </div>
      </div>
    </div>
  );
}
