/** Form inputs bound to a path of the draft definition. Each input's id and test id are
 * `field-<path>` and its errors (the API's, for that path) sit right under it. */
import { createContext, useContext, useEffect, useState, type ReactNode } from "react";
import { getAt, type Definition, type Json } from "./definition";
import { FieldErrors, useProblems } from "./problems";

interface DraftBinding {
  draft: Definition;
  update: (path: string, value: Json | undefined) => void;
  readOnly: boolean;
}

const DraftContext = createContext<DraftBinding | null>(null);

export function DraftProvider({ children, ...binding }: DraftBinding & { children: ReactNode }) {
  return <DraftContext.Provider value={binding}>{children}</DraftContext.Provider>;
}

export function useDraft(): DraftBinding {
  const binding = useContext(DraftContext);
  if (!binding) throw new Error("a form control outside DraftProvider");
  return binding;
}

/** When an input is emptied: `null` (the API's "not set"), or drop the key (its default applies). */
type WhenEmpty = "null" | "remove" | "empty-string";

interface FieldProps {
  path: string;
  label: string;
  hint?: ReactNode;
  className?: string;
}

function Field({ path, label, hint, className, children }: FieldProps & { children: ReactNode }) {
  const invalid = useProblems(path).length > 0;
  return (
    <div className={`field ${invalid ? "invalid" : ""} ${className ?? ""}`}>
      <label htmlFor={`field-${path}`}>{label}</label>
      {children}
      {hint && <p className="hint">{hint}</p>}
      <FieldErrors path={path} />
    </div>
  );
}

const ids = (path: string) => ({ id: `field-${path}`, "data-testid": `field-${path}` });

function emptied(whenEmpty: WhenEmpty): Json | undefined {
  return whenEmpty === "null" ? null : whenEmpty === "remove" ? undefined : "";
}

export function TextField({
  multiline,
  rows,
  mono,
  placeholder,
  whenEmpty = "empty-string",
  ...field
}: FieldProps & { multiline?: boolean; rows?: number; mono?: boolean; placeholder?: string; whenEmpty?: WhenEmpty }) {
  const { draft, update, readOnly } = useDraft();
  const value = getAt(draft, field.path);
  const text = typeof value === "string" ? value : value == null ? "" : String(value);
  const change = (next: string) => update(field.path, next === "" ? emptied(whenEmpty) : next);
  const common = { ...ids(field.path), value: text, readOnly, placeholder, className: mono ? "mono" : undefined };
  return (
    <Field {...field}>
      {multiline ? (
        <textarea {...common} rows={rows ?? 4} onChange={(e) => change(e.target.value)} />
      ) : (
        <input {...common} type="text" onChange={(e) => change(e.target.value)} />
      )}
    </Field>
  );
}

export function NumberField({
  step,
  min,
  max,
  integer,
  placeholder,
  whenEmpty = "remove",
  ...field
}: FieldProps & { step?: number; min?: number; max?: number; integer?: boolean; placeholder?: string; whenEmpty?: WhenEmpty }) {
  const { draft, update, readOnly } = useDraft();
  const value = getAt(draft, field.path);
  // The text is kept while typing ("0." is not a number yet); the draft gets the number.
  const [text, setText] = useState(value == null ? "" : String(value));
  useEffect(() => {
    if (text === "" ? value != null : Number(text) !== value) setText(value == null ? "" : String(value));
  }, [value]); // only a change from elsewhere (JSON mode, a reload) rewrites the text
  function change(next: string) {
    setText(next);
    if (next.trim() === "") update(field.path, emptied(whenEmpty));
    else if (!Number.isNaN(Number(next))) update(field.path, integer ? Math.trunc(Number(next)) : Number(next));
  }
  return (
    <Field {...field}>
      <input
        {...ids(field.path)}
        type="number"
        inputMode={integer ? "numeric" : "decimal"}
        step={step ?? (integer ? 1 : "any")}
        min={min}
        max={max}
        value={text}
        placeholder={placeholder}
        readOnly={readOnly}
        onChange={(e) => change(e.target.value)}
      />
    </Field>
  );
}

export function SelectField({ options, ...field }: FieldProps & { options: { value: string; label: string }[] }) {
  const { draft, update, readOnly } = useDraft();
  const value = getAt(draft, field.path);
  return (
    <Field {...field}>
      <select {...ids(field.path)} value={String(value ?? "")} disabled={readOnly} onChange={(e) => update(field.path, e.target.value)}>
        {options.map((o) => (
          <option key={o.value} value={o.value}>
            {o.label}
          </option>
        ))}
      </select>
    </Field>
  );
}

export function CheckboxField({ path, label, hint }: { path: string; label: string; hint?: ReactNode }) {
  const { draft, update, readOnly } = useDraft();
  return (
    <div className="field checkbox-field">
      <label className="check">
        <input
          {...ids(path)}
          type="checkbox"
          checked={getAt(draft, path) === true}
          disabled={readOnly}
          onChange={(e) => update(path, e.target.checked)}
        />
        <span>{label}</span>
      </label>
      {hint && <p className="hint">{hint}</p>}
      <FieldErrors path={path} nested />
    </div>
  );
}

/** A list of short strings typed as `a, b, c`; the draft gets the array. */
export function ListField({ placeholder, ...field }: FieldProps & { placeholder?: string }) {
  const { draft, update, readOnly } = useDraft();
  const value = getAt(draft, field.path);
  const items = Array.isArray(value) ? value.map(String) : [];
  return (
    <Field {...field}>
      <ListInput
        {...ids(field.path)}
        items={items}
        readOnly={readOnly}
        placeholder={placeholder}
        onChange={(next) => update(field.path, next)}
      />
    </Field>
  );
}

export function splitList(text: string): string[] {
  return text
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
}

/** The text is the user's (a trailing ", " survives); it is re-read from `items` only when
 * the items change from elsewhere (JSON mode, a reload). */
export function ListInput({
  items,
  onChange,
  multiline,
  ...input
}: {
  items: string[];
  onChange: (items: string[]) => void;
  multiline?: boolean;
  readOnly?: boolean;
  placeholder?: string;
  id?: string;
  "data-testid"?: string;
}) {
  const [text, setText] = useState(items.join(", "));
  useEffect(() => {
    if (splitList(text).join(",") !== items.join(",")) setText(items.join(", "));
  }, [items.join(",")]); // the items' content, not the array's identity
  const change = (next: string) => {
    setText(next);
    onChange(splitList(next));
  };
  if (multiline) return <textarea {...input} rows={2} value={text} onChange={(e) => change(e.target.value)} />;
  return <input {...input} type="text" value={text} onChange={(e) => change(e.target.value)} />;
}
