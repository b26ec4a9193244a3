/** One turn field's value, readable: enums as chips, booleans as yes/no chips, numbers as
 * numbers (with the schema's range when it has one), lists as chips, text as text. The agent
 * type's turn schema says which is which; without it the value's own JSON type decides. */

export interface SchemaField {
  name: string;
  type?: string;
  description?: string;
  enum?: string[] | null;
  min?: number | null;
  max?: number | null;
}

const formatNumber = (n: number) => (Number.isInteger(n) ? String(n) : n.toFixed(Math.abs(n) < 1 ? 3 : 2).replace(/0+$/, ""));

export function FieldValue({ value, field }: { value: unknown; field?: SchemaField }) {
  if (value === null || value === undefined || value === "") return <span className="muted">—</span>;
  if (typeof value === "boolean") {
    return <span className={`chip ${value ? "ok" : "neutral"}`}>{value ? "yes" : "no"}</span>;
  }
  if (typeof value === "number") {
    const range = field?.min != null && field?.max != null ? ` / ${formatNumber(field.max)}` : "";
    return (
      <span className="pg-number">
        {formatNumber(value)}
        {range && <span className="muted">{range}</span>}
      </span>
    );
  }
  if (Array.isArray(value)) {
    if (value.length === 0) return <span className="muted">none</span>;
    const items = value.map((item) => (typeof item === "string" ? item : JSON.stringify(item)));
    // Short items (tags) read as chips; sentences as a list.
    if (items.every((item) => item.length <= 24)) {
      return <span className="chips">{items.map((item, i) => <span className="chip neutral" key={i}>{item}</span>)}</span>;
    }
    return <ul className="pg-list">{items.map((item, i) => <li key={i}>{item}</li>)}</ul>;
  }
  if (typeof value === "string") {
    const isEnum = field ? field.type === "enum" : false;
    return isEnum ? <span className="chip">{value}</span> : <span className="pg-text">{value}</span>;
  }
  return <pre className="pg-json">{JSON.stringify(value, null, 2)}</pre>;
}
