export function RoutingPage() { return <div className="empty">Routing: to be built</div>; }
