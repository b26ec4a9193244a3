/** Eval suites, runs and the release gate as the admin API serves them (README "Evals"):
 * GET /agents/{id}/suite, GET /agents/{id}/eval-runs (newest first), POST the same to queue a
 * run, GET /eval-runs/{run_id} (progress while it runs, each failure's transcript once done),
 * and POST /agents/{id}/versions/{n}/activate, which the gate may refuse with a 409. */
import { ApiError, get, request, type Problem } from "../api";
import type { AgentConfig } from "../types";

export type RunStatus = "queued" | "running" | "completed" | "error";

export interface RunProgress {
  attempts_done: number;
  attempts_total: number;
  scenario: string | null;
}

export interface TranscriptLine {
  role: string;
  text?: string | null;
}

export interface FailedExpectation {
  attempt: number;
  /** null for the greeting and routing, which come before any user turn. */
  turn: number | null;
  expectation: string;
  detail: string;
  transcript: TranscriptLine[];
}

export interface ScenarioResult {
  name: string;
  pass_rate: number;
  required_pass_rate?: number | null;
  passed: boolean;
  repeat?: number | null;
  rooms?: string[];
  wall_time_s?: number | null;
  failures?: FailedExpectation[];
  skipped?: string[];
}

export interface EvalRun {
  run_id: string;
  agent_id: string;
  version: number;
  pinned?: boolean;
  /** Runs stored before the queue existed have none: they are completed. */
  status?: RunStatus;
  /** Meaningful only once completed. */
  passed: boolean | null;
  started_at: string | null;
  ended_at?: string | null;
  wall_time_s?: number | null;
  tokens?: { input: number; output: number; sessions_counted?: number | null; sessions?: number | null } | null;
  progress?: RunProgress | null;
  requested_by?: string | null;
  error?: string | null;
  models?: { llm?: string[]; stt?: string | null; tts?: string | null; judge?: string | null; caller?: string | null } | null;
  scenarios: ScenarioResult[];
}

export const runStatus = (run: EvalRun): RunStatus => run.status ?? "completed";
export const isFinished = (run: EvalRun): boolean => ["completed", "error"].includes(runStatus(run));

const agentPath = (agentId: string) => `agents/${encodeURIComponent(agentId)}`;

/** The suite as stored, or null when the type has none (404). */
export async function fetchSuite(agentId: string): Promise<Record<string, unknown> | null> {
  try {
    return await get<Record<string, unknown>>(`${agentPath(agentId)}/suite`);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404 && error.problem.type.endsWith("suite-not-found")) return null;
    throw error;
  }
}

export const fetchRuns = (agentId: string, limit = 20) =>
  get<{ items: EvalRun[]; next_cursor: string | null }>(`${agentPath(agentId)}/eval-runs`, { limit });

export const fetchRun = (runId: string) => get<EvalRun>(`eval-runs/${encodeURIComponent(runId)}`);

/** Queues a run of the type's suite on `version` (null: the current version, through routing). */
export const startRun = (agentId: string, version: number | null) =>
  request<EvalRun>("POST", `${agentPath(agentId)}/eval-runs`, { body: { version } }).then((r) => r.body);

const MAX_TRANSIENT_FAILURES = 5;

/** Waits for a run to finish, reporting each read: polls with backoff (0.5 s, growing to 3 s),
 * since a run takes seconds per attempt and the API has no push. A network error or a 5xx is
 * asked again (up to 5 in a row: an API restarting mid-run); anything else ends the wait.
 * Stops when `signal` aborts. */
export async function followRun(runId: string, onRead: (run: EvalRun) => void, signal: AbortSignal): Promise<void> {
  let delay = 500;
  let failures = 0;
  while (!signal.aborted) {
    try {
      const run = await fetchRun(runId);
      failures = 0;
      if (signal.aborted) return;
      onRead(run);
      if (isFinished(run)) return;
    } catch (error) {
      const transient = error instanceof ApiError && (error.status === 0 || error.status >= 500);
      if (!transient || ++failures >= MAX_TRANSIENT_FAILURES) throw error;
    }
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(Math.round(delay * 1.5), 3000);
  }
}

// --- the release gate ----------------------------------------------------------------------

export const OVERRIDE_HEADER = "Switchboard-Gate-Override";

/** What a 409 release-gate problem says: which version, the run it looked at, what failed. */
export interface GateRefusal {
  version: number | null;
  runId: string | null;
  failingScenarios: string[];
  detail: string;
}

export function gateRefusal(error: unknown): GateRefusal | null {
  if (!(error instanceof ApiError) || error.status !== 409 || !error.problem.type.endsWith("release-gate")) return null;
  const problem: Problem = error.problem;
  const failing = problem.failing_scenarios;
  return {
    version: typeof problem.version === "number" ? problem.version : null,
    runId: typeof problem.run_id === "string" ? problem.run_id : null,
    failingScenarios: Array.isArray(failing) ? failing.map(String) : [],
    detail: problem.detail ?? problem.title,
  };
}

/** A routing change's 409: each type it would send more traffic without a passing run. */
export interface RoutingGateAgent {
  agent_id: string;
  version: number | null;
  run_id: string | null;
  failing_scenarios: string[];
}

export function routingGateRefusal(error: unknown): { agents: RoutingGateAgent[]; detail: string } | null {
  if (!(error instanceof ApiError) || error.status !== 409 || !error.problem.type.endsWith("release-gate")) return null;
  const agents = Array.isArray(error.problem.agents) ? (error.problem.agents as RoutingGateAgent[]) : [];
  return { agents, detail: error.problem.detail ?? error.problem.title };
}

/** Makes version n current; `override` (an admin's reason) sends the gate's override header. */
export const activateVersion = (agentId: string, version: number, ifMatch: string | null, override?: string) =>
  request<AgentConfig>("POST", `${agentPath(agentId)}/versions/${version}/activate`, {
    ifMatch,
    headers: override ? { [OVERRIDE_HEADER]: override } : undefined,
  });

/** The gate's override header carries text: a header value is Latin-1 printable, one line. */
export function overrideProblem(reason: string): string | null {
  const trimmed = reason.trim();
  if (!trimmed) return "Give a reason: it is recorded with the override.";
  if (trimmed.length > 500) return "At most 500 characters.";
  if (/[^\x20-\x7e\xa0-\xff]/.test(trimmed)) return "One line of plain Latin characters: it travels in an HTTP header.";
  return null;
}
