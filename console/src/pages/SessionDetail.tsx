export function SessionDetail({ sessionId }: { sessionId: string }) { return <div className="empty">{sessionId}</div>; }
