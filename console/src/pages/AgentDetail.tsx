export function AgentDetail({ agentId }: { agentId: string; tab?: string; query: URLSearchParams }) { return <div className="empty">{agentId}</div>; }
