/** A line diff of two JSON documents, GitHub-style: removed lines red, added green, long
 * unchanged stretches folded to a few lines of context. */
import "./agents.css";
import { useMemo, useState } from "react";
import { diffLines } from "diff";

const CONTEXT = 3;

interface Line {
  kind: "same" | "added" | "removed";
  text: string;
  oldNo?: number;
  newNo?: number;
}

type Block = { kind: "lines"; lines: Line[] } | { kind: "fold"; lines: Line[] };

function toLines(before: string, after: string): Line[] {
  const lines: Line[] = [];
  let oldNo = 1;
  let newNo = 1;
  for (const part of diffLines(before, after)) {
    const texts = part.value.replace(/\n$/, "").split("\n");
    for (const text of texts) {
      if (part.added) lines.push({ kind: "added", text, newNo: newNo++ });
      else if (part.removed) lines.push({ kind: "removed", text, oldNo: oldNo++ });
      else lines.push({ kind: "same", text, oldNo: oldNo++, newNo: newNo++ });
    }
  }
  return lines;
}

/** Unchanged runs longer than twice the context become one fold between their context lines. */
function toBlocks(lines: Line[]): Block[] {
  const blocks: Block[] = [];
  let run: Line[] = [];
  const flush = (atStart: boolean, atEnd: boolean) => {
    const keepBefore = atStart ? 0 : CONTEXT;
    const keepAfter = atEnd ? 0 : CONTEXT;
    if (run.length > keepBefore + keepAfter + 1) {
      blocks.push({ kind: "lines", lines: run.slice(0, keepBefore) });
      blocks.push({ kind: "fold", lines: run.slice(keepBefore, run.length - keepAfter) });
      blocks.push({ kind: "lines", lines: run.slice(run.length - keepAfter) });
    } else {
      blocks.push({ kind: "lines", lines: run });
    }
    run = [];
  };
  let seenChange = false;
  for (const line of lines) {
    if (line.kind === "same") {
      run.push(line);
      continue;
    }
    if (run.length) flush(!seenChange, false);
    seenChange = true;
    blocks.push({ kind: "lines", lines: [line] });
  }
  if (run.length) flush(!seenChange, true);
  return blocks;
}

export function DiffView({ before, after, beforeLabel, afterLabel }: { before: string; after: string; beforeLabel: string; afterLabel: string }) {
  const lines = useMemo(() => toLines(before, after), [before, after]);
  const blocks = useMemo(() => toBlocks(lines), [lines]);
  const added = lines.filter((l) => l.kind === "added").length;
  const removed = lines.filter((l) => l.kind === "removed").length;
  return (
    <div className="diff" data-testid="diff" data-added={added} data-removed={removed}>
      <div className="diff-head">
        <span>
          <span className="diff-label removed">{beforeLabel}</span> → <span className="diff-label added">{afterLabel}</span>
        </span>
        <span className="diff-counts">
          {added || removed ? (
            <>
              <span className="added">+{added}</span> <span className="removed">−{removed}</span>
            </>
          ) : (
            <span className="muted">identical</span>
          )}
        </span>
      </div>
      <div className="diff-body">
        {blocks.map((block, i) => (block.kind === "fold" ? <Fold key={i} lines={block.lines} /> : block.lines.map((line, j) => <DiffLine key={`${i}-${j}`} line={line} />)))}
      </div>
    </div>
  );
}

function Fold({ lines }: { lines: Line[] }) {
  const [open, setOpen] = useState(false);
  if (open) return <>{lines.map((line, i) => <DiffLine key={i} line={line} />)}</>;
  return (
    <button type="button" className="diff-fold" onClick={() => setOpen(true)}>
      ⋯ {lines.length} unchanged lines
    </button>
  );
}

function DiffLine({ line }: { line: Line }) {
  const sign = line.kind === "added" ? "+" : line.kind === "removed" ? "−" : " ";
  return (
    <div className={`diff-line ${line.kind}`} data-kind={line.kind}>
      <span className="no">{line.oldNo ?? ""}</span>
      <span className="no">{line.newNo ?? ""}</span>
      <span className="sign">{sign}</span>
      <span className="text">{line.text}</span>
    </div>
  );
}
