export function SessionList({ query }: { query: URLSearchParams }) { return <div className="empty">Sessions {query.toString()}</div>; }
