/** Said to a viewer on a page of changes it may look at but not make. */
import { useMe } from "../session";

export function ReadOnlyNote({ testId }: { testId: string }) {
  const me = useMe();
  if (me.can.write) return null;
  return (
    <p className="notice" data-testid={testId}>
      Your key is a {me.role}: you can look, and the API refuses changes.
    </p>
  );
}
