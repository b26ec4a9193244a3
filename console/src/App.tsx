import { useCallback, useEffect, useState } from "react";
import { credentials, fetchMe, type Me } from "./api";
import { focusPageHeading, usePageTitle } from "./a11y";
import { MeContext } from "./session";
import { href, useRoute } from "./router";
import { Login } from "./pages/Login";
import { Playground } from "./pages/Playground";
import { AgentList } from "./pages/AgentList";
import { AgentDetail } from "./pages/AgentDetail";
import { RoutingPage } from "./pages/Routing";
import { SessionList } from "./pages/SessionList";
import { SessionDetail } from "./pages/SessionDetail";
import { WebhooksPage } from "./pages/Webhooks";
import { ChannelsPage } from "./pages/Channels";
import { AnalyticsPage } from "./pages/Analytics";

const SECTIONS = [
  { id: "playground", label: "Playground" },
  { id: "agents", label: "Agent types" },
  { id: "routing", label: "Routing" },
  { id: "sessions", label: "Sessions" },
  { id: "analytics", label: "Analytics" },
  { id: "channels", label: "Channels" },
  { id: "webhooks", label: "Webhooks" },
] as const;

export function App() {
  const [me, setMe] = useState<Me | null>(null);
  const [checking, setChecking] = useState(() => credentials.get() !== null);

  const logout = useCallback(() => {
    credentials.clear();
    setMe(null);
  }, []);

  useEffect(() => {
    const key = credentials.get();
    if (key) {
      fetchMe(key)
        .then(setMe)
        .catch(() => credentials.clear())
        .finally(() => setChecking(false));
    }
    window.addEventListener("switchboard:unauthenticated", logout);
    return () => window.removeEventListener("switchboard:unauthenticated", logout);
  }, [logout]);

  if (checking) return <div className="splash">Switchboard</div>;
  if (!me) return <Login onLogin={setMe} />;
  return (
    <MeContext.Provider value={me}>
      <Shell me={me} onLogout={logout} />
    </MeContext.Provider>
  );
}

function Shell({ me, onLogout }: { me: Me; onLogout: () => void }) {
  const route = useRoute();
  const section = route.path[0] ?? (me.can.mint_tokens ? "playground" : "agents");
  return (
    <div className="shell">
      {/* The first Tab stop: past the top bar to the page. A hash href would be a route here. */}
      <a
        className="skip-link"
        href="#main-content"
        onClick={(e) => {
          e.preventDefault();
          if (!focusPageHeading()) document.getElementById("main-content")?.focus();
        }}
      >
        Skip to content
      </a>
      <header className="topbar">
        <a className="brand" href={href("playground")}>
          <span className="brand-mark" aria-hidden="true" />
          Switchboard
        </a>
        <nav className="tabs" aria-label="Sections">
          {SECTIONS.map((s) => (
            <a key={s.id} href={href(s.id)} className={section === s.id ? "tab active" : "tab"} aria-current={section === s.id ? "page" : undefined}>
              {s.label}
            </a>
          ))}
        </nav>
        <div className="whoami" data-testid="whoami">
          <span className="key-name">{me.name}</span>
          <span className={`role role-${me.role}`} data-testid="role">{me.role}</span>
          <a className="docs-link" href="/docs" target="_blank" rel="noreferrer">API docs</a>
          <button className="ghost" onClick={onLogout} data-testid="logout">Log out</button>
        </div>
      </header>
      <main className="content" id="main-content" tabIndex={-1}>
        <Page section={section} rest={route.path.slice(1)} query={route.query} />
      </main>
    </div>
  );
}

function Page({ section, rest, query }: { section: string; rest: string[]; query: URLSearchParams }) {
  switch (section) {
    case "playground":
      return <Playground query={query} />;
    case "agents":
      return rest[0] ? <AgentDetail agentId={rest[0]} tab={rest[1]} query={query} /> : <AgentList />;
    case "routing":
      return <RoutingPage />;
    case "sessions":
      return rest[0] ? <SessionDetail sessionId={rest[0]} /> : <SessionList query={query} />;
    case "channels":
      return <ChannelsPage bindingId={rest[0]} />;
    case "webhooks":
      return <WebhooksPage subscriptionId={rest[0]} />;
    case "analytics":
      return <AnalyticsPage query={query} />;
    default:
      return <NotFound />;
  }
}

function NotFound() {
  usePageTitle("Not found");
  return (
    <>
      <h1 className="visually-hidden">Not found</h1>
      <div className="empty">Nothing here. Pick a section above.</div>
    </>
  );
}
