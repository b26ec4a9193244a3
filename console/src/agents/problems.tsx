/** The API's field problems (RFC 9457 `errors`) shown where they belong: next to the form field
 * whose dotted path they name (`field-error` with `data-field`), and all of them in a summary. */
import { createContext, useContext, type ReactNode } from "react";
import type { FieldProblem } from "../api";

const ProblemsContext = createContext<FieldProblem[]>([]);

export function ProblemsProvider({ problems, children }: { problems: FieldProblem[]; children: ReactNode }) {
  return <ProblemsContext.Provider value={problems}>{children}</ProblemsContext.Provider>;
}

/** Problems for `path`: exactly that path, or (with `nested`) anything under it, e.g. the
 * enum cell of a turn field also shows `turn_schema.fields.2.enum.0`. */
export function useProblems(path: string, nested = false): FieldProblem[] {
  const problems = useContext(ProblemsContext);
  return problems.filter((p) => p.field === path || (nested && p.field.startsWith(path + ".")));
}

export function FieldErrors({ path, nested = false }: { path: string; nested?: boolean }) {
  const problems = useProblems(path, nested);
  return (
    <>
      {problems.map((p, i) => (
        <span key={i} className="field-error" role="alert" data-testid="field-error" data-field={p.field}>
          {p.message}
        </span>
      ))}
    </>
  );
}

export function ProblemSummary({ title, problems, testId }: { title: string; problems: FieldProblem[]; testId?: string }) {
  if (!problems.length) return null;
  return (
    <div className="error problem-summary" role="alert" data-testid={testId}>
      <strong>{title}</strong>
      <ul>
        {problems.map((p, i) => (
          <li key={i}>
            <code>{p.field}</code> {p.message}
          </li>
        ))}
      </ul>
    </div>
  );
}
