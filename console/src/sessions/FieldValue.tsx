/** One turn field's value, readable: enums as chips, numbers as numbers (with their bounds),
 * booleans as yes/no, lists as chips, free text as text. The schema (when known) says which is
 * which; without it, a short identifier-like string is taken for an enum value. */
import type { SchemaField } from "./types";

const IDENTIFIER = /^[A-Za-z][A-Za-z0-9_.-]{0,47}$/;

export function FieldValue({ value, field }: { value: unknown; field?: SchemaField }) {
  if (value === null || value === undefined || value === "") return <span className="muted field-none">not given</span>;
  if (typeof value === "boolean") {
    return <span className={value ? "chip field-bool" : "chip neutral field-bool"} data-value={String(value)}>{value ? "yes" : "no"}</span>;
  }
  if (typeof value === "number") {
    const bounds = field?.min != null && field?.max != null ? ` / ${field.min}–${field.max}` : "";
    return (
      <span className="field-number" data-value={value}>
        <strong>{Number.isInteger(value) ? value : value.toFixed(2)}</strong>
        {bounds && <span className="hint">{bounds}</span>}
      </span>
    );
  }
  if (Array.isArray(value)) {
    if (value.length === 0) return <span className="muted field-none">none</span>;
    return (
      <span className="chips">
        {value.map((item, i) => (
          <span key={i} className="chip neutral">{typeof item === "string" ? item : JSON.stringify(item)}</span>
        ))}
      </span>
    );
  }
  if (typeof value === "string") {
    const isEnum = field ? field.type === "enum" : IDENTIFIER.test(value);
    if (!isEnum) return <span className="field-text">{value}</span>;
    // a failed turn keeps what the model wrote, allowed or not: say which values were not
    const allowed = !field?.enum || field.enum.includes(value);
    return allowed ? (
      <span className="chip" data-value={value}>{value}</span>
    ) : (
      <span className="chip bad" data-value={value} data-invalid="true" title={`Not one of: ${field?.enum?.join(", ")}`}>
        {value} (not allowed)
      </span>
    );
  }
  return <code>{JSON.stringify(value)}</code>;
}
