/** The JSON editor, loaded when first shown: CodeMirror and the schema tooling are most of the
 * console's JavaScript, and the form, the lists and the playground never need them. */
import { lazy, Suspense } from "react";
import type { JsonEditorProps } from "./JsonEditor";

const JsonEditor = lazy(() => import("./JsonEditor").then((module) => ({ default: module.JsonEditor })));

export function LazyJsonEditor(props: JsonEditorProps) {
  return (
    <Suspense fallback={<div className="json-editor json-editor-loading">Loading the editor…</div>}>
      <JsonEditor {...props} />
    </Suspense>
  );
}
