/** The turn schema's fields as a table: one row per value the agent fills on every turn.
 * Changing a field's type drops the constraints that do not apply to the new type (the API
 * refuses `enum` on a bool, `min` on a string), so a type switch never leaves a hidden error. */
import { getAt, type Json } from "./definition";
import { ListInput, useDraft } from "./formControls";
import { FieldErrors, useProblems } from "./problems";

const PATH = "turn_schema.fields";
const TYPES = ["string", "enum", "bool", "int", "number", "list"] as const;
type FieldType = (typeof TYPES)[number];
type TurnFieldDraft = { [key: string]: Json };

const NUMERIC: FieldType[] = ["int", "number"];

function withType(field: TurnFieldDraft, type: FieldType): TurnFieldDraft {
  const next: TurnFieldDraft = { ...field, type };
  if (type !== "enum") delete next.enum;
  else if (!Array.isArray(next.enum)) next.enum = [];
  if (!NUMERIC.includes(type)) {
    delete next.min;
    delete next.max;
  }
  if (type !== "list") delete next.max_items;
  return next;
}

export function TurnFieldsTable() {
  const { draft, update, readOnly } = useDraft();
  const fields = (getAt(draft, PATH) as TurnFieldDraft[] | undefined) ?? [];
  const rowsInvalid = useProblems(PATH).length > 0;

  const setField = (index: number, field: TurnFieldDraft) => update(`${PATH}.${index}`, field);
  const setValue = (index: number, key: string, value: Json | undefined) => {
    const next = { ...fields[index] };
    if (value === undefined) delete next[key];
    else next[key] = value;
    setField(index, next);
  };
  const move = (index: number, by: number) => {
    const next = [...fields];
    const [moved] = next.splice(index, 1);
    next.splice(index + by, 0, moved);
    update(PATH, next);
  };
  const add = () =>
    update(PATH, [...fields, { name: `field_${fields.length}`, type: "string", description: "What this field records.", required: true }]);

  return (
    <div className={rowsInvalid ? "tf-editor invalid" : "tf-editor"}>
      <table className="list turn-fields-table" data-testid="turn-fields">
        <thead>
          <tr>
            <th style={{ width: "17%" }}>Name</th>
            <th style={{ width: "10%" }}>Type</th>
            <th style={{ width: "7%" }}>Required</th>
            <th style={{ width: "24%" }}>Values / range</th>
            <th>Description</th>
            <th style={{ width: 96 }} aria-label="Actions" />
          </tr>
        </thead>
        <tbody>
          {fields.map((field, index) => {
            const at = `${PATH}.${index}`;
            const type = String(field.type ?? "string") as FieldType;
            const isReply = field.name === "system_response";
            return (
              <tr key={index} data-testid="turn-field-row" data-field-name={String(field.name ?? "")}>
                <td>
                  <input
                    id={`field-${at}.name`}
                    data-testid={`field-${at}.name`}
                    className="mono"
                    value={String(field.name ?? "")}
                    readOnly={readOnly || isReply}
                    aria-label="Field name"
                    onChange={(e) => setValue(index, "name", e.target.value)}
                  />
                  <FieldErrors path={`${at}.name`} />
                  {isReply && <span className="hint">the reply itself, always first</span>}
                </td>
                <td>
                  <select
                    id={`field-${at}.type`}
                    data-testid={`field-${at}.type`}
                    value={type}
                    disabled={readOnly || isReply}
                    aria-label="Field type"
                    onChange={(e) => setField(index, withType(field, e.target.value as FieldType))}
                  >
                    {TYPES.map((t) => (
                      <option key={t} value={t}>
                        {t}
                      </option>
                    ))}
                  </select>
                  <FieldErrors path={`${at}.type`} />
                </td>
                <td className="center">
                  <input
                    type="checkbox"
                    id={`field-${at}.required`}
                    data-testid={`field-${at}.required`}
                    checked={field.required !== false}
                    disabled={readOnly || isReply}
                    aria-label="Required"
                    onChange={(e) => setValue(index, "required", e.target.checked)}
                  />
                </td>
                <td>
                  <Constraints at={at} field={field} type={type} setValue={(key, value) => setValue(index, key, value)} />
                </td>
                <td>
                  <textarea
                    id={`field-${at}.description`}
                    data-testid={`field-${at}.description`}
                    rows={2}
                    value={String(field.description ?? "")}
                    readOnly={readOnly}
                    aria-label="Description"
                    onChange={(e) => setValue(index, "description", e.target.value)}
                  />
                  <FieldErrors path={`${at}.description`} />
                  {/* Checks across a field's keys (enum on a bool, min > max) name the row. */}
                  <FieldErrors path={at} />
                </td>
                <td className="row-actions">
                  <button type="button" className="icon" title="Move up" aria-label="Move up" disabled={readOnly || index === 0} onClick={() => move(index, -1)}>
                    ↑
                  </button>
                  <button type="button" className="icon" title="Move down" aria-label="Move down" disabled={readOnly || index === fields.length - 1} onClick={() => move(index, 1)}>
                    ↓
                  </button>
                  <button
                    type="button"
                    className="icon danger"
                    title="Remove this field"
                    aria-label="Remove field"
                    data-testid="turn-field-remove"
                    disabled={readOnly || isReply}
                    onClick={() => update(PATH, fields.filter((_, i) => i !== index))}
                  >
                    ×
                  </button>
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      <FieldErrors path={PATH} />
      <button type="button" className="add-row" data-testid="turn-field-add" disabled={readOnly} onClick={add}>
        + Add field
      </button>
    </div>
  );
}

function Constraints({
  at,
  field,
  type,
  setValue,
}: {
  at: string;
  field: TurnFieldDraft;
  type: FieldType;
  setValue: (key: string, value: Json | undefined) => void;
}) {
  const { readOnly } = useDraft();
  if (type === "enum") {
    return (
      <>
        <ListInput
          id={`field-${at}.enum`}
          data-testid={`field-${at}.enum`}
          items={Array.isArray(field.enum) ? field.enum.map(String) : []}
          multiline
          readOnly={readOnly}
          placeholder="low, medium, high"
          onChange={(values) => setValue("enum", values)}
        />
        <FieldErrors path={`${at}.enum`} nested />
      </>
    );
  }
  if (NUMERIC.includes(type)) {
    const number = (key: "min" | "max") => (
      <input
        id={`field-${at}.${key}`}
        data-testid={`field-${at}.${key}`}
        type="number"
        step="any"
        placeholder={key}
        aria-label={key === "min" ? "Minimum" : "Maximum"}
        value={field[key] == null ? "" : String(field[key])}
        readOnly={readOnly}
        onChange={(e) => setValue(key, e.target.value === "" ? undefined : Number(e.target.value))}
      />
    );
    return (
      <>
        <div className="range">
          {number("min")}
          <span className="muted">to</span>
          {number("max")}
        </div>
        <FieldErrors path={`${at}.min`} />
        <FieldErrors path={`${at}.max`} />
      </>
    );
  }
  if (type === "list") {
    return (
      <>
        <input
          id={`field-${at}.max_items`}
          data-testid={`field-${at}.max_items`}
          type="number"
          min={1}
          max={100}
          placeholder="max items"
          aria-label="Maximum items"
          value={field.max_items == null ? "" : String(field.max_items)}
          readOnly={readOnly}
          onChange={(e) => setValue("max_items", e.target.value === "" ? undefined : Math.trunc(Number(e.target.value)))}
        />
        <FieldErrors path={`${at}.max_items`} />
      </>
    );
  }
  return <span className="muted">—</span>;
}
