import { useState, type FormEvent } from "react";
import { ApiError, credentials, fetchMe, type Me } from "../api";
import { moveFocusToNextPage, usePageTitle } from "../a11y";

/** Log in with an API key. The key is checked against the API (`GET /api/v1/me`) and kept in
 * sessionStorage only: it is gone when the browser session ends. */
export function Login({ onLogin }: { onLogin: (me: Me) => void }) {
  const [key, setKey] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  usePageTitle("Log in");

  async function submit(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const me = await fetchMe(key.trim());
      credentials.set(key.trim());
      moveFocusToNextPage(); // the form goes away with the focus it had
      onLogin(me);
    } catch (e) {
      setError(e instanceof ApiError && e.status === 401 ? "This API key is not valid (or was revoked)." : String((e as Error).message));
    } finally {
      setBusy(false);
    }
  }

  return (
    <main className="login">
      <form className="card login-card" onSubmit={submit} aria-labelledby="login-title">
        <h1 className="brand big" id="login-title">
          <span className="brand-mark" aria-hidden="true" />
          Switchboard <span className="visually-hidden">: log in</span>
        </h1>
        <p className="muted">Voice and chat agents on LiveKit. Log in with an admin API key.</p>
        <label className="field">
          <span>API key</span>
          <input
            type="password"
            autoFocus
            autoComplete="off"
            value={key}
            onChange={(e) => setKey(e.target.value)}
            placeholder="sk-…  (make dev prints one)"
            data-testid="api-key"
          />
        </label>
        {error && <p className="error" role="alert" data-testid="login-error">{error}</p>}
        <button className="primary" type="submit" disabled={busy || !key.trim()} data-testid="login">
          {busy ? "Checking…" : "Log in"}
        </button>
        <p className="hint">
          The key stays in this browser tab only. Admin keys edit; viewer keys look. Create one with{" "}
          <code>python -m admin_api.keys create --name NAME --role admin|viewer</code>.
        </p>
      </form>
    </main>
  );
}
