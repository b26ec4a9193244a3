export function Playground({ query }: { query: URLSearchParams }) { return <div className="empty">Playground {query.toString()}</div>; }
