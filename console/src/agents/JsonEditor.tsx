/** A CodeMirror 6 JSON editor: schema-aware completion, hover and lint (codemirror-json-schema),
 * plus the API's own field problems shown as diagnostics at the path they name.
 *
 * The test id goes on the editable content element itself, so a browser test can `fill()` it
 * (one insertion: no auto-closed brackets) like any input. */
import "./agents.css";
import { useEffect, useRef } from "react";
import { basicSetup } from "codemirror";
import { Compartment, EditorState, StateEffect, StateField } from "@codemirror/state";
import { EditorView } from "@codemirror/view";
import { linter, type Diagnostic } from "@codemirror/lint";
import { getJsonPointers, jsonSchema, updateSchema } from "codemirror-json-schema";
import { disableErrorLogging } from "best-effort-json-parser";
import type { FieldProblem } from "../api";
import { pointerOf } from "./definition";
import type { EditorSchema } from "./schema";

// codemirror-json-schema parses half-typed JSON with best-effort-json-parser, which logs a
// console error for every keystroke that leaves the text incomplete; the linter reports it.
disableErrorLogging();

/** codemirror-json-schema's name for plain JSON (MODES.JSON, not exported by the package). */
const JSON_MODE = "json4" as Parameters<typeof getJsonPointers>[1];

const setServerProblems = StateEffect.define<FieldProblem[]>();

const serverProblems = StateField.define<FieldProblem[]>({
  create: () => [],
  update(value, transaction) {
    for (const effect of transaction.effects) if (effect.is(setServerProblems)) return effect.value;
    return value;
  },
});

/** Where a field path sits in the document: the path itself, else its nearest ancestor. */
function rangeOf(state: EditorState, field: string): { from: number; to: number } {
  const pointers = getJsonPointers(state, JSON_MODE);
  let path = field === "(body)" ? "" : field;
  for (;;) {
    const found = pointers.get(pointerOf(path));
    if (found) {
      if ("valueFrom" in found) return { from: found.keyFrom, to: found.valueTo };
      return { from: found.keyFrom, to: found.keyTo };
    }
    if (path === "") return { from: 0, to: Math.min(1, state.doc.length) };
    path = path.includes(".") ? path.slice(0, path.lastIndexOf(".")) : "";
  }
}

const serverLinter = linter(
  (view): Diagnostic[] =>
    view.state.field(serverProblems).map((problem) => ({
      ...rangeOf(view.state, problem.field),
      severity: "error",
      source: "API",
      message: `${problem.field}: ${problem.message}`,
    })),
  {
    delay: 0,
    needsRefresh: (update) => update.transactions.some((t) => t.effects.some((e) => e.is(setServerProblems))),
  },
);

const theme = EditorView.theme({
  "&": { fontSize: "12.5px", backgroundColor: "#fff" },
  ".cm-content": { fontFamily: "var(--mono)" },
  ".cm-gutters": { backgroundColor: "#fafbfe", borderRight: "1px solid var(--line)", color: "#6b7286" }, // 4.6:1 (#9aa1b5 was 2.5:1)
  "&.cm-focused": { outline: "none" },
  ".cm-tooltip": { maxWidth: "480px", fontFamily: "inherit", fontSize: "12.5px" },
});

export interface JsonEditorProps {
  value: string;
  onChange: (text: string) => void;
  schema?: EditorSchema | null;
  problems?: FieldProblem[];
  readOnly?: boolean;
  testId: string;
  label: string;
}

export function JsonEditor({ value, onChange, schema, problems = [], readOnly = false, testId, label }: JsonEditorProps) {
  const host = useRef<HTMLDivElement>(null);
  const view = useRef<EditorView | null>(null);
  const editable = useRef(new Compartment());
  const changed = useRef(onChange);
  changed.current = onChange;

  useEffect(() => {
    const created = new EditorView({
      parent: host.current!,
      state: EditorState.create({
        doc: value,
        extensions: [
          basicSetup,
          jsonSchema(schema ?? undefined),
          serverProblems,
          serverLinter,
          theme,
          EditorView.lineWrapping,
          editable.current.of([EditorState.readOnly.of(readOnly), EditorView.editable.of(!readOnly)]),
          // tabindex: axe-core counts a scroll area's contenteditable as focusable only with it
          // (it is the same one Tab stop either way)
          EditorView.contentAttributes.of({ "data-testid": testId, "aria-label": label, tabindex: "0" }),
          EditorView.updateListener.of((update) => {
            if (update.docChanged) changed.current(update.state.doc.toString());
          }),
        ],
      }),
    });
    view.current = created;
    return () => {
      created.destroy();
      view.current = null;
    };
  }, []); // the view is made once; the effects below keep it in step with the props

  useEffect(() => {
    const current = view.current;
    if (current && current.state.doc.toString() !== value) {
      current.dispatch({ changes: { from: 0, to: current.state.doc.length, insert: value } });
    }
  }, [value]);

  useEffect(() => {
    if (view.current && schema) updateSchema(view.current, schema);
  }, [schema]);

  useEffect(() => {
    view.current?.dispatch({
      effects: editable.current.reconfigure([EditorState.readOnly.of(readOnly), EditorView.editable.of(!readOnly)]),
    });
  }, [readOnly]);

  // New problems from the API: mark them, and bring the first one into view with the cursor
  // on it (the editor renders only the lines in view, so an off-screen mark would go unseen).
  useEffect(() => {
    const current = view.current;
    if (!current) return;
    const first = problems[0];
    if (!first) {
      current.dispatch({ effects: setServerProblems.of(problems) });
      return;
    }
    const { from } = rangeOf(current.state, first.field);
    current.dispatch({
      effects: [setServerProblems.of(problems), EditorView.scrollIntoView(from, { y: "center" })],
      selection: { anchor: from },
    });
  }, [problems]);

  return <div className="json-editor" ref={host} />;
}
