export function AgentList() { return <div className="empty">AgentList: to be built</div>; }
