/** A generated signing secret, shown the one time the API answers it (create, rotate): copy it
 * now, it is stored encrypted and no page or call shows it again. */
import { useState } from "react";

export function SecretReveal({ secret, rotated, onDone }: { secret: string; rotated: boolean; onDone: () => void }) {
  const [copied, setCopied] = useState<"yes" | "failed" | null>(null);

  async function copy() {
    try {
      await navigator.clipboard.writeText(secret);
      setCopied("yes");
    } catch {
      setCopied("failed"); // no clipboard permission (e.g. plain http): the text is selectable
    }
  }

  return (
    <div className="modal-backdrop">
      <div className="card modal wide secret-reveal" role="dialog" aria-modal="true" aria-labelledby="secret-title" data-testid="webhook-secret-dialog">
        <h2 id="secret-title">{rotated ? "New signing secret" : "Signing secret"}</h2>
        <p className="notice" role="alert">
          Copy it now: this is the only time it is shown. Switchboard keeps it encrypted and cannot show it again
          {rotated ? "; the previous secret stays valid for the grace period, so update your receiver before it ends." : "."}
        </p>
        <div className="secret-box">
          <code className="mono" data-testid="webhook-secret" onFocus={(e) => window.getSelection()?.selectAllChildren(e.currentTarget)} tabIndex={0}>
            {secret}
          </code>
          <button type="button" className="primary" onClick={copy} data-testid="webhook-secret-copy">
            Copy
          </button>
        </div>
        {copied === "yes" && <p className="hint" data-testid="webhook-secret-copied">Copied to the clipboard.</p>}
        {copied === "failed" && <p className="hint">The browser refused the clipboard: select the secret and copy it.</p>}
        <p className="hint">
          Receivers verify the <code>webhook-signature</code> header with it (Standard Webhooks: any of their libraries
          takes this <code>whsec_…</code> value as is).
        </p>
        <div className="actions end">
          <button type="button" onClick={onDone} data-testid="webhook-secret-done">
            I have stored it
          </button>
        </div>
      </div>
    </div>
  );
}
